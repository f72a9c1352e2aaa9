"""Reruns link to their source batch, attempts keep inputs that staff later edited, and JSON is stored unescaped.

Rows written before OrderedJSONField stopped escaping hold `\\uXXXX` text that no search for Chinese can match:
they are read and written back in chunks (a no-op on rows without escapes).
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q, TextField
from django.db.models.functions import Cast

import batches.db.fields

CHUNK = 2000


def unescape_json(apps, schema_editor):
    Execution = apps.get_model("batches", "Execution")
    escaped = Q(inputs_text__contains="\\u") | Q(outputs_text__contains="\\u")
    rows = (
        Execution.objects.annotate(inputs_text=Cast("inputs", TextField()), outputs_text=Cast("outputs", TextField()))
        .filter(escaped)
        .only("pk", "inputs", "outputs")
        .order_by("pk")
    )
    chunk = []
    for row in rows.iterator(chunk_size=CHUNK):
        chunk.append(row)
        if len(chunk) == CHUNK:
            Execution.objects.bulk_update(chunk, ["inputs", "outputs"])
            chunk = []
    Execution.objects.bulk_update(chunk, ["inputs", "outputs"])


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0003_i13_upstream_circuit"),
    ]

    operations = [
        migrations.AddField(
            model_name="attempt",
            name="inputs",
            field=batches.db.fields.OrderedJSONField(blank=True, null=True, verbose_name="inputs sent"),
        ),
        migrations.AddField(
            model_name="batchtask",
            name="source",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="reruns",
                to="batches.batchtask",
                verbose_name="run again from",
            ),
        ),
        migrations.RunPython(unescape_json, migrations.RunPython.noop, elidable=True),
    ]
