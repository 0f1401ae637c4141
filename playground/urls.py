from django.urls import path

from playground import views

app_name = "playground"

urlpatterns = [
    path("playground/", views.playground_page, name="page"),
    path("playground/sessions/<uuid:session_id>/status", views.session_status, name="status"),
    path("playground/sessions/<uuid:session_id>/transcript", views.session_transcript, name="transcript"),
    path("playground/sessions/<uuid:session_id>/timeline", views.session_timeline, name="timeline"),
    path("playground/recent", views.recent_sessions, name="recent"),
    path("playground/logs", views.log_tail, name="logs"),
]
