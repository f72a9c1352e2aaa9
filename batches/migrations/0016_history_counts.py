"""Counts kept per batch by triggers (BatchCount), indexes for the admin's exact search on upstream ids, and the
mark of a batch being pruned.

The triggers run in the statement that changes the executions, so the counts are committed, or rolled back, with
the rows themselves, whichever code path wrote them. PostgreSQL: statement triggers over transition tables (one
grouped upsert per statement, however many rows it changed; a cancel of a million rows is one upsert); each
connection adds to its own shard row so that concurrent writers never wait on one row. SQLite (one writer at a
time): row triggers on shard 0.
"""

import django.db.models.deletion
from django.db import migrations, models

STATES = ("pending", "running", "succeeded", "failed", "cancelled")
COLUMNS = ", ".join(STATES)
ADD = ", ".join(f"{name} = c.{name} + excluded.{name}" for name in (*STATES, "tokens"))
SQLITE_ADD = ", ".join(f"{name} = {name} + excluded.{name}" for name in (*STATES, "tokens"))


def _pg_counts(rows: str, sign: str) -> str:
    counts = ", ".join(f"{sign}count(*) FILTER (WHERE status = '{name}')" for name in STATES)
    return f"""
    INSERT INTO batches_batchcount AS c (batch_id, shard, {COLUMNS}, tokens)
    SELECT batch_id, pg_backend_pid() % 64, {counts}, {sign}coalesce(sum(total_tokens), 0)
    FROM {rows} GROUP BY batch_id ORDER BY batch_id
    ON CONFLICT (batch_id, shard) DO UPDATE SET {ADD};"""


_PG_CHANGES = ", ".join(
    f"sum((n.status = '{name}')::int - (o.status = '{name}')::int)" for name in STATES
)
PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION batches_count_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN {_pg_counts("new_rows", "")}
  ELSIF TG_OP = 'DELETE' THEN {_pg_counts("old_rows", "-")}
  ELSE
    INSERT INTO batches_batchcount AS c (batch_id, shard, {COLUMNS}, tokens)
    SELECT n.batch_id, pg_backend_pid() % 64, {_PG_CHANGES}, sum(n.total_tokens::bigint - o.total_tokens)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status <> o.status OR n.total_tokens <> o.total_tokens
    GROUP BY n.batch_id ORDER BY n.batch_id
    ON CONFLICT (batch_id, shard) DO UPDATE SET {ADD};
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION batches_forget_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM batches_batchcount WHERE batch_id IN (SELECT id FROM old_rows);
  RETURN NULL;
END $$;
CREATE TRIGGER batches_count_insert AFTER INSERT ON batches_execution
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION batches_count_executions();
CREATE TRIGGER batches_count_update AFTER UPDATE ON batches_execution
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION batches_count_executions();
CREATE TRIGGER batches_count_delete AFTER DELETE ON batches_execution
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION batches_count_executions();
CREATE TRIGGER batches_count_forget AFTER DELETE ON batches_batchtask
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION batches_forget_counts();
"""
PG_DROP = """
DROP TRIGGER IF EXISTS batches_count_insert ON batches_execution;
DROP TRIGGER IF EXISTS batches_count_update ON batches_execution;
DROP TRIGGER IF EXISTS batches_count_delete ON batches_execution;
DROP TRIGGER IF EXISTS batches_count_forget ON batches_batchtask;
DROP FUNCTION IF EXISTS batches_count_executions();
DROP FUNCTION IF EXISTS batches_forget_counts();
"""


def _sqlite_upsert(batch: str, values: str) -> str:
    return f"""INSERT INTO batches_batchcount (batch_id, shard, {COLUMNS}, tokens) VALUES ({batch}, 0, {values})
    ON CONFLICT (batch_id, shard) DO UPDATE SET {SQLITE_ADD};"""


def _sqlite_values(row: str, sign: str) -> str:
    return ", ".join([*(f"{sign}({row}.status = '{name}')" for name in STATES), f"{sign}{row}.total_tokens"])


_SQLITE_CHANGES = ", ".join(
    [*(f"(NEW.status = '{name}') - (OLD.status = '{name}')" for name in STATES), "NEW.total_tokens - OLD.total_tokens"]
)
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER batches_count_insert AFTER INSERT ON batches_execution BEGIN
    {_sqlite_upsert("NEW.batch_id", _sqlite_values("NEW", ""))} END""",
    f"""CREATE TRIGGER batches_count_update AFTER UPDATE OF status, total_tokens ON batches_execution
    WHEN OLD.status IS NOT NEW.status OR OLD.total_tokens IS NOT NEW.total_tokens BEGIN
    {_sqlite_upsert("NEW.batch_id", _SQLITE_CHANGES)} END""",
    f"""CREATE TRIGGER batches_count_delete AFTER DELETE ON batches_execution BEGIN
    {_sqlite_upsert("OLD.batch_id", _sqlite_values("OLD", "-"))} END""",
    """CREATE TRIGGER batches_count_forget AFTER DELETE ON batches_batchtask BEGIN
    DELETE FROM batches_batchcount WHERE batch_id = OLD.id; END""",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {name}"
    for name in ("batches_count_insert", "batches_count_update", "batches_count_delete", "batches_count_forget")
]
_SUMS = ", ".join(f"SUM(CASE WHEN status = '{name}' THEN 1 ELSE 0 END)" for name in STATES)
BACKFILL = f"""INSERT INTO batches_batchcount (batch_id, shard, {COLUMNS}, tokens)
SELECT batch_id, 0, {_SUMS}, COALESCE(SUM(total_tokens), 0) FROM batches_execution GROUP BY batch_id"""


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION, params=None)
    else:
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement, params=None)
    schema_editor.execute(BACKFILL, params=None)


def drop_triggers(apps, schema_editor):
    for statement in [PG_DROP] if schema_editor.connection.vendor == "postgresql" else SQLITE_DROP:
        schema_editor.execute(statement, params=None)
    schema_editor.execute("DELETE FROM batches_batchcount")


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0015_lookup_fail_fast_and_node_names"),
    ]

    operations = [
        migrations.CreateModel(
            name="BatchCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("batch_id", models.BigIntegerField()),
                ("shard", models.PositiveSmallIntegerField(default=0)),
                ("pending", models.BigIntegerField(default=0)),
                ("running", models.BigIntegerField(default=0)),
                ("succeeded", models.BigIntegerField(default=0)),
                ("failed", models.BigIntegerField(default=0)),
                ("cancelled", models.BigIntegerField(default=0)),
                ("tokens", models.BigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("batch_id", "shard"), name="batchcount_batch_shard_uniq")
                ],
            },
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("workflow_run_id", ""), _negated=True),
                fields=["workflow_run_id"],
                name="execution_run_id_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("task_id", ""), _negated=True), fields=["task_id"], name="execution_task_id_idx"
            ),
        ),
        migrations.AlterField(
            model_name="execution",
            name="batch",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="executions",
                to="batches.batchtask",
            ),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
        migrations.AddField(
            model_name="batchtask",
            name="pruning_since",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
