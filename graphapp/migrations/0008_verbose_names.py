"""Verbose names, choice labels and help texts marked for translation.

Only what Django keeps in its migration state changes: no SQL runs on any database
(``sqlmigrate`` shows every operation as a no-op), so no table is copied and the
ledger's and the version's triggers stay as they are.
"""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
import graphapp.models
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('graphapp', '0007_history_and_change_log'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='edge',
            options={'ordering': ['id'], 'verbose_name': 'edge', 'verbose_name_plural': 'edges'},
        ),
        migrations.AlterModelOptions(
            name='node',
            options={'ordering': ['-momentum', '-id'], 'verbose_name': 'node', 'verbose_name_plural': 'nodes'},
        ),
        migrations.AlterField(
            model_name='edge',
            name='created_at',
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at'),
        ),
        migrations.AlterField(
            model_name='edge',
            name='relation',
            field=models.CharField(default='relates_to', help_text='e.g. relates_to, same_file, same_cycle, semantic, implements, improves, depends_on', max_length=64, validators=[django.core.validators.RegexValidator('\\A[a-z][a-z0-9_]{0,63}\\Z', 'Use snake_case, e.g. relates_to.')], verbose_name='relation'),
        ),
        migrations.AlterField(
            model_name='edge',
            name='source',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='outgoing', to='graphapp.node', verbose_name='source'),
        ),
        migrations.AlterField(
            model_name='edge',
            name='target',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='incoming', to='graphapp.node', verbose_name='target'),
        ),
        migrations.AlterField(
            model_name='edge',
            name='weight',
            field=models.FloatField(default=1.0, validators=[graphapp.models.validate_finite, django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)], verbose_name='weight'),
        ),
        migrations.AlterField(
            model_name='node',
            name='content',
            field=models.TextField(validators=[django.core.validators.MaxLengthValidator(20000)], verbose_name='content'),
        ),
        migrations.AlterField(
            model_name='node',
            name='created_at',
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at'),
        ),
        migrations.AlterField(
            model_name='node',
            name='decayed_at',
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name='decayed at'),
        ),
        migrations.AlterField(
            model_name='node',
            name='last_accessed',
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name='last accessed'),
        ),
        migrations.AlterField(
            model_name='node',
            name='metadata',
            field=models.JSONField(blank=True, default=graphapp.models._empty_metadata, verbose_name='metadata'),
        ),
        migrations.AlterField(
            model_name='node',
            name='momentum',
            field=models.FloatField(default=1.0, validators=[graphapp.models.validate_finite, django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)], verbose_name='momentum'),
        ),
        migrations.AlterField(
            model_name='node',
            name='node_type',
            field=models.CharField(choices=[('FACT', 'Fact'), ('CONCEPT', 'Concept'), ('CODE', 'Code'), ('DREAM', 'Dream'), ('ENTITY', 'Entity')], max_length=16, verbose_name='node type'),
        ),
    ]
