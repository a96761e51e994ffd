"""Routes of the dashboard: the page, password sign-in/out, the session's token, static."""

from django.contrib.auth.views import LogoutView
from django.urls import path, re_path

from dashboard import views

urlpatterns = [
    path("", views.index, name="dashboard"),
    path("login/", views.DashboardLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(next_page="/"), name="logout"),
    path("dashboard/token", views.session_token, name="dashboard-token"),
    path("dashboard/me", views.MeView.as_view(), name="dashboard-me"),
    re_path(r"^static/(?P<path>.+)$", views.static, name="static"),
]
