from django.contrib import admin

from access.models import ProfileGrant


@admin.register(ProfileGrant)
class ProfileGrantAdmin(admin.ModelAdmin):
    list_display = ("profile", "user", "group", "created_at")
    list_filter = ("profile", "group")
    search_fields = ("profile__name", "user__username", "group__name")
