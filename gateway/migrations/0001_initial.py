"""API tokens, in the core app ``gateway``.

Until the layout change the model lived in the app ``gateway_project`` (table
``gateway_project_apitoken``). A database made then already has the table and its tokens:
this migration renames that table instead of creating an empty one, so upgrading keeps
every token working.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


OLD_TABLE = "gateway_project_apitoken"


def create_or_adopt(apps, schema_editor) -> None:
    model = apps.get_model("gateway", "ApiToken")
    existing = schema_editor.connection.introspection.table_names()
    if OLD_TABLE in existing:
        schema_editor.alter_db_table(model, OLD_TABLE, model._meta.db_table)
    else:
        schema_editor.create_model(model)


def drop(apps, schema_editor) -> None:
    schema_editor.delete_model(apps.get_model("gateway", "ApiToken"))


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The model in the migration state only; the table is made (or adopted) below,
        # where the state already knows the model.
        migrations.SeparateDatabaseAndState(state_operations=[migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('digest', models.CharField(max_length=128, primary_key=True, serialize=False)),
                ('token_key', models.CharField(db_index=True, max_length=25)),
                ('created', models.DateTimeField(auto_now_add=True)),
                ('expiry', models.DateTimeField(blank=True, null=True)),
                ('name', models.CharField(default='default', max_length=100)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='auth_token_set', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'API token',
                'ordering': ['-created'],
            },
        )]),
        migrations.RunPython(create_or_adopt, drop),
    ]
