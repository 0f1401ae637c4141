from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from voiceagent import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("favicon.ico", views.favicon, name="favicon"),
    path("healthz", views.healthz, name="healthz"),
    path("api/healthz", views.healthz, name="api-healthz"),
    path("api/logs", views.ClientLogApi.as_view(), name="client-logs"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", views.api_docs, name="api-docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("sessions.urls")),
    path("", include("elevenlabs.urls")),
    path("", include("playground.urls")),
]
