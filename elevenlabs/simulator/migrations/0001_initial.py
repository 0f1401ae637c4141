"""SimulatedConversation, taken over from the elevenlabs app with its table and rows.

On a database that had it (elevenlabs up to 0003) nothing is created: the table
elevenlabs_simulatedconversation is the model's (Meta.db_table). On a fresh database
elevenlabs' 0001 created that table before this runs, so the same holds. The
content type is renamed so that permissions granted on the model (and admin log
entries) follow it.
"""

import django.db.models.deletion
from django.db import migrations, models


def move_content_type(apps, schema_editor, *, source, target):
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    old = content_type.objects.using(db).filter(app_label=source, model="simulatedconversation")
    if content_type.objects.using(db).filter(app_label=target, model="simulatedconversation").exists():
        return  # already there (post_migrate made it): the old one is stale, for remove_stale_contenttypes
    old.update(app_label=target)


def forwards(apps, schema_editor):
    move_content_type(apps, schema_editor, source="elevenlabs", target="simulator")


def backwards(apps, schema_editor):
    move_content_type(apps, schema_editor, source="simulator", target="elevenlabs")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("elevenlabs", "0004_simulated_conversation_moves_to_simulator"),
        ("voice_sessions", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="SimulatedConversation",
                    fields=[
                        ("conversation_id", models.CharField(max_length=128, primary_key=True, serialize=False)),
                        ("agent_id", models.CharField(max_length=128)),
                        ("agent_type", models.CharField(max_length=16)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("initiated", "Initiated"),
                                    ("in-progress", "In Progress"),
                                    ("processing", "Processing"),
                                    ("done", "Done"),
                                    ("failed", "Failed"),
                                ],
                                default="initiated",
                                max_length=16,
                            ),
                        ),
                        ("expires_at", models.DateTimeField(help_text="The signed URL must be used before this.")),
                        ("connected_at", models.DateTimeField(blank=True, null=True)),
                        ("ended_at", models.DateTimeField(blank=True, null=True)),
                        ("text_only", models.BooleanField(default=False)),
                        (
                            "http_base",
                            models.CharField(
                                blank=True,
                                help_text="Our own server's base URL: the post-call webhook goes to its /elevenlabs/webhook.",
                                max_length=255,
                            ),
                        ),
                        (
                            "client_data",
                            models.JSONField(
                                blank=True,
                                default=dict,
                                help_text="The client's conversation_initiation_client_data (overrides, variables).",
                            ),
                        ),
                        ("transcript", models.JSONField(blank=True, default=list)),
                        ("termination_reason", models.CharField(blank=True, max_length=255)),
                        ("webhook_sent_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "session",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="simulated_conversations",
                                to="voice_sessions.voicesession",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "elevenlabs_simulatedconversation",
                        "ordering": ["-created_at"],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards, elidable=True),
    ]
