from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from sessions.dashboard import analytics_page
from voiceagent import views

# Django's own auth views, in the playground's look; for every user (the admin's login is for staff only).
ACCOUNT_TEMPLATES = "playground/accounts"
accounts = [
    path(
        "login/",
        auth_views.LoginView.as_view(template_name=f"{ACCOUNT_TEMPLATES}/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(template_name=f"{ACCOUNT_TEMPLATES}/logged_out.html"), name="logout"),
    path(
        "password_change/",
        auth_views.PasswordChangeView.as_view(template_name=f"{ACCOUNT_TEMPLATES}/password_change.html"),
        name="password_change",
    ),
    path(
        "password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name=f"{ACCOUNT_TEMPLATES}/password_change_done.html"),
        name="password_change_done",
    ),
]

# Outside DRF's views, errors on the API's paths are JSON in the one shape; HTML pages elsewhere.
handler400 = views.bad_request
handler403 = views.permission_denied
handler404 = views.page_not_found
handler500 = views.server_error

# The analytics page is part of the admin (its look, its staff-only login) and the admin's index links to it.
admin.site.index_template = "sessions/admin/index.html"

# Django tries the patterns in order, and the session API carries most of the traffic: it comes first
# (no other pattern overlaps its paths, so the order changes only how soon they are found).
urlpatterns = [
    path("", include("sessions.urls")),
    path("admin/analytics/", admin.site.admin_view(analytics_page), name="admin-analytics"),
    path("admin/", admin.site.urls),
    path("favicon.ico", views.favicon, name="favicon"),
    path("healthz", views.healthz, name="healthz"),
    path("api/healthz", views.healthz, name="api-healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("api/logs", views.ClientLogApi.as_view(), name="client-logs"),
    path("accounts/", include(accounts)),
    path("api/schema/", views.ApiSchemaView.as_view(), name="schema"),
    path("api/docs/", views.api_docs, name="api-docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("elevenlabs.urls")),
    path("", include("playground.urls")),
]
