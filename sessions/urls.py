from django.urls import path

from sessions import views

urlpatterns = [
    path("api/analytics", views.AnalyticsApi.as_view(), name="analytics"),
    path("voice/sessions", views.SessionListCreateApi.as_view(), name="session-list"),
    path("voice/sessions/<uuid:session_id>", views.SessionDetailApi.as_view(), name="session-detail"),
    path("voice/sessions/<uuid:session_id>/end", views.SessionEndApi.as_view(), name="session-end"),
    path("voice/sessions/<uuid:session_id>/audio", views.SessionAudioApi.as_view(), name="session-audio"),
    path("voice/sessions/<uuid:session_id>/events", views.SessionEventsApi.as_view(), name="session-events"),
]
