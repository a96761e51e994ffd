from django.contrib import admin

from notifications.models import ChatNotify, Delivery, Destination


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    # The target and secret stay encrypted; only the hint is shown.
    list_display = ("name", "owner", "kind", "target_hint", "enabled")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("title", "destination", "status", "attempts", "created_at")
    list_filter = ("status",)


@admin.register(ChatNotify)
class ChatNotifyAdmin(admin.ModelAdmin):
    list_display = ("chat", "destination", "updated_at")
