"""Governance events become an append-only hash chain per organization (3 of 3): unique links, and triggers
that refuse UPDATE and DELETE in the database itself."""

from django.db import migrations, models


PG_TRIGGER = """
CREATE OR REPLACE FUNCTION governance_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'governance events are append-only: % refused on event %', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS governance_event_append_only ON governance_governanceevent;
CREATE TRIGGER governance_event_append_only
    BEFORE UPDATE OR DELETE ON governance_governanceevent
    FOR EACH ROW EXECUTE FUNCTION governance_event_append_only();
"""
PG_DROP = """
DROP TRIGGER IF EXISTS governance_event_append_only ON governance_governanceevent;
DROP FUNCTION IF EXISTS governance_event_append_only();
"""
SQLITE_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS governance_event_no_update BEFORE UPDATE ON governance_governanceevent
       BEGIN SELECT RAISE(ABORT, 'governance events are append-only: UPDATE refused'); END;""",
    """CREATE TRIGGER IF NOT EXISTS governance_event_no_delete BEFORE DELETE ON governance_governanceevent
       BEGIN SELECT RAISE(ABORT, 'governance events are append-only: DELETE refused'); END;""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS governance_event_no_update;",
    "DROP TRIGGER IF EXISTS governance_event_no_delete;",
]


def add_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_TRIGGER, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_DROP, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("governance", "0007_chain_existing_events")]

    operations = [
        migrations.AlterField(
            model_name="governanceevent",
            name="hash",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
        migrations.AddConstraint(
            model_name="governanceevent",
            constraint=models.UniqueConstraint(fields=("chain", "sequence"), name="one_event_per_place_in_chain"),
        ),
        migrations.RunPython(add_triggers, drop_triggers),
    ]
