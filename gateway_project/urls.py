"""URL routes: the REST API (with the Clotho-compatible aliases of docs/api.md), admin,
the OpenAPI and AsyncAPI documents, dashboard."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from access import views as access
from audit import views as audit
from chats import views as chats
from chats.contract import AsyncApiView
from files import views as files
from gateway import views as gateway
from jobs import views as jobs
from mcp_servers import views as mcp_servers
from notifications import views as notifications
from permissions import views as permissions
from profiles import views as profiles
from usage import views as usage
from users import views as users

handler400 = "gateway.errors.handler400"
handler403 = "gateway.errors.handler403"
handler404 = "gateway.errors.handler404"
handler500 = "gateway.errors.handler500"

api = [
    path("chats", chats.ChatListView.as_view()),
    path("chats/bulk-delete", chats.ChatBulkDeleteView.as_view()),
    path("chats/<str:chat_id>", chats.ChatDetailView.as_view()),
    path("chats/<str:chat_id>/messages/<int:message_id>/regenerate",
         chats.MessageRegenerateView.as_view()),
    path("chats/<str:chat_id>/messages/<int:message_id>/edit",
         chats.MessageEditView.as_view()),
    path("chats/<str:chat_id>/context", chats.ChatContextView.as_view()),
    path("chats/<str:chat_id>/compact", chats.ChatCompactView.as_view()),
    path("chats/<str:chat_id>/cancel", chats.ChatCancelView.as_view()),
    path("chats/<str:chat_id>/profile", chats.ChatProfileView.as_view()),
    path("chats/<str:chat_id>/active-profile", chats.ChatProfileView.as_view()),
    path("chats/<str:chat_id>/notify", notifications.ChatNotifyView.as_view()),
    path("profiles", profiles.ProfileListView.as_view()),
    path("profiles/default", profiles.DefaultProfileView.as_view()),
    path("profiles/default/current", profiles.DefaultProfileView.as_view()),
    path("profiles/default/set", profiles.DefaultProfileView.as_view()),
    path("profiles/<str:name>", profiles.ProfileDetailView.as_view()),
    path("profiles/<str:name>/models", profiles.ProfileModelsView.as_view()),
    path("permissions", permissions.PermissionsView.as_view()),
    path("permissions/tools", permissions.ToolsView.as_view()),
    path("mcp/servers", mcp_servers.McpServerListView.as_view()),
    path("mcp/servers/<str:name>", mcp_servers.McpServerDetailView.as_view()),
    path("config/sandbox", permissions.SandboxConfigView.as_view()),
    path("sandbox", permissions.SandboxConfigView.as_view()),
    path("panic", chats.PanicView.as_view()),
    path("files", files.FileListView.as_view()),
    path("files/content", files.FileContentView.as_view()),
    path("files/upload", files.UploadView.as_view()),
    path("files/folder", files.FolderView.as_view()),
    path("files/rename", files.RenameView.as_view()),
    path("files/quota", files.QuotaView.as_view()),
    path("tokens", gateway.TokenListView.as_view()),
    path("tokens/<str:token_id>", gateway.TokenDetailView.as_view()),
    path("jobs", jobs.JobListView.as_view()),
    path("jobs/<str:job_id>", jobs.JobDetailView.as_view()),
    path("jobs/<str:job_id>/run", jobs.JobRunNowView.as_view()),
    path("jobs/<str:job_id>/runs", jobs.JobRunListView.as_view()),
    path("notifications/destinations", notifications.DestinationListView.as_view()),
    path("notifications/destinations/<str:destination_id>",
         notifications.DestinationDetailView.as_view()),
    path("notifications/deliveries", notifications.DeliveryListView.as_view()),
    path("users", users.UserListView.as_view()),
    path("users/<str:username>", users.UserDetailView.as_view()),
    path("users/<str:username>/invite", users.UserInviteView.as_view()),
    path("groups", users.GroupListView.as_view()),
    path("groups/<str:name>", users.GroupDetailView.as_view()),
    path("access", access.AccessListView.as_view()),
    path("access/<str:name>", access.AccessDetailView.as_view()),
    path("usage", usage.UsageView.as_view()),
    path("usage/export", usage.UsageExportView.as_view()),
    path("budgets", usage.BudgetListView.as_view()),
    path("budgets/<int:budget_id>", usage.BudgetDetailView.as_view()),
    path("prices", usage.PriceListView.as_view()),
    path("prices/<str:name>", usage.PriceDetailView.as_view()),
    path("audit", audit.AuditListView.as_view()),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("asyncapi.json", AsyncApiView.as_view(), name="asyncapi"),
]

urlpatterns = [
    path("health", gateway.HealthView.as_view()),
    path("api/", include(api)),
    path("admin/", admin.site.urls),
    path("invite/<uidb64>/<token>/", users.InviteView.as_view(), name="invite"),
    path("", include("dashboard.urls")),
]
