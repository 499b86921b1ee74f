from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assistants_app", "0006_usage_ledger"),
    ]

    operations = [
        migrations.AddField(
            model_name="assistant",
            name="conversation_starters",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Up to 4 short prompts offered as cards when a chat starts.",
            ),
        ),
    ]
