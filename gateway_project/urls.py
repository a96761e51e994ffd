"""URL routes: the REST API (with the Clotho-compatible aliases of docs/api.md), admin,
the OpenAPI and AsyncAPI documents, dashboard."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from chats import views as chats
from chats.contract import AsyncApiView
from gateway import views as gateway
from mcp_servers import views as mcp_servers
from permissions import views as permissions
from profiles import views as profiles

handler400 = "gateway.errors.handler400"
handler403 = "gateway.errors.handler403"
handler404 = "gateway.errors.handler404"
handler500 = "gateway.errors.handler500"

api = [
    path("chats", chats.ChatListView.as_view()),
    path("chats/<str:chat_id>", chats.ChatDetailView.as_view()),
    path("chats/<str:chat_id>/context", chats.ChatContextView.as_view()),
    path("chats/<str:chat_id>/compact", chats.ChatCompactView.as_view()),
    path("chats/<str:chat_id>/cancel", chats.ChatCancelView.as_view()),
    path("chats/<str:chat_id>/profile", chats.ChatProfileView.as_view()),
    path("chats/<str:chat_id>/active-profile", chats.ChatProfileView.as_view()),
    path("profiles", profiles.ProfileListView.as_view()),
    path("profiles/default", profiles.DefaultProfileView.as_view()),
    path("profiles/default/current", profiles.DefaultProfileView.as_view()),
    path("profiles/default/set", profiles.DefaultProfileView.as_view()),
    path("profiles/<str:name>", profiles.ProfileDetailView.as_view()),
    path("permissions", permissions.PermissionsView.as_view()),
    path("permissions/tools", permissions.ToolsView.as_view()),
    path("mcp/servers", mcp_servers.McpServerListView.as_view()),
    path("mcp/servers/<str:name>", mcp_servers.McpServerDetailView.as_view()),
    path("config/sandbox", permissions.SandboxConfigView.as_view()),
    path("sandbox", permissions.SandboxConfigView.as_view()),
    path("panic", chats.PanicView.as_view()),
    path("tokens", gateway.TokenListView.as_view()),
    path("tokens/<str:token_id>", gateway.TokenDetailView.as_view()),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("asyncapi.json", AsyncApiView.as_view(), name="asyncapi"),
]

urlpatterns = [
    path("health", gateway.HealthView.as_view()),
    path("api/", include(api)),
    path("admin/", admin.site.urls),
    path("", include("dashboard.urls")),
]
