from django import forms
from django.contrib import admin

from profiles.models import ModelProfile


class ProfileForm(forms.ModelForm):
    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                              help_text="Write-only: leave empty to keep the stored key.")
    clear_api_key = forms.BooleanField(required=False)

    class Meta:
        model = ModelProfile
        fields = ("name", "provider", "model", "base_url", "context_window",
                  "max_output_tokens")

    def save(self, commit: bool = True) -> ModelProfile:
        profile = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            profile.set_api_key(None)
        elif self.cleaned_data.get("api_key"):
            profile.set_api_key(self.cleaned_data["api_key"])
        if commit:
            profile.save()
        return profile


@admin.register(ModelProfile)
class ModelProfileAdmin(admin.ModelAdmin):
    form = ProfileForm
    list_display = ("name", "provider", "model", "is_default", "masked_api_key")
    actions = ["make_default"]

    @admin.action(description="Make the selected profile the default")
    def make_default(self, request, queryset):
        if queryset.count() == 1:
            queryset.first().make_default()
