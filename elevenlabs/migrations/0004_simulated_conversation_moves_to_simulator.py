"""SimulatedConversation moves to the simulator app (elevenlabs.simulator), keeping its table and rows.

Only Django's idea of the models changes here: the table elevenlabs_simulatedconversation stays
as it is, and the simulator's 0001 (which depends on this) takes the model over. A deployment
without the simulator keeps the table untouched.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("elevenlabs", "0003_webhook_outcome_malformed"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="SimulatedConversation")],
            database_operations=[],
        ),
    ]
