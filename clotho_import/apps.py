from django.apps import AppConfig


class ClothoImportConfig(AppConfig):
    name = "clotho_import"
    verbose_name = "Import from Clotho"
