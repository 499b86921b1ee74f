"""Statements every answer makes, built by the ORM once per process and sent with new values
after.

Building a statement costs a process several times what sending it does: the QuerySet, its
expressions, the compiler's SQL, 300 to 900 µs of CPU against 70 to 200 µs to send the same
SQL (`python -m bench.statements`; BENCHMARKS.md, "Cost per answer"). An answer makes about
thirty. A statement here is still written with the ORM, as a function of its values:

    @prepared.select
    def _thread_state(thread_id: int):
        return Thread.objects.filter(pk=thread_id).values("assistant_id", "current_leaf_id")

    @prepared.update
    def _keep_lease(run_id: int, owner: str, until: datetime):
        return Run.objects.filter(pk=run_id, lease_owner=owner), {"lease_expires": until}

The first call on a database builds it with stand-in values, finds where each value went among
the SQL's parameters, and keeps the SQL; every call then puts its values in those places and
sends it. A select answers what its QuerySet would (model instances, select_related ones too;
dicts from values(); tuples from values_list(); flat values), as a list; an update answers
how many rows it changed.

A value is declared by its type: int, str, bool, datetime or Decimal, or one of them `| None`.
None is SQL of its own (`= NULL` set, `IS NULL` compared), so a statement is built once for each
set of its values given as None. The build refuses, loudly, a statement whose SQL another value
changes (a boolean a filter compares, which Django writes as `"flag"` or `NOT "flag"`), whose
value a lookup rewrites (`contains` sends `%value%`), or that reads anything else that changes,
such as the clock, while it is built (built twice with the same values, its SQL differs).
`tests/test_prepared.py` checks every kind of statement against the ORM's own answer.

This reaches into Django's compiler (`as_sql`, `select`, `klass_info`, `get_converters`), as
its own iterables do, for Django 5.2 (pinned in pyproject.toml).
"""

import inspect
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import update_wrapper

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    ValuesIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.models.sql import UpdateQuery

KINDS = (int, str, bool, datetime, Decimal)


def _stand_in(kind: type, index: int, which: int):
    """Two stand-ins per value of a statement (which is 0 or 1), unlike any constant of one."""
    if kind is bool:
        return which == 0
    if kind is int:
        return 1_987_600_000 + 2 * index + which  # within a 32-bit column's range
    if kind is str:
        return f"\x1fstand-in {index} {which}"
    if kind is Decimal:
        return Decimal(f"19876.{index:03d}{which}")
    return datetime(2001, 2, 3, 4, 5, 6, 1000 * index + which + 1, tzinfo=UTC)


def _adapters(connection, kind: type):
    """How a value may reach a statement's parameters: as it is, or a datetime as the backend
    stores it (SQLite: as text)."""
    if kind is datetime:
        return [_as_it_is, connection.ops.adapt_datetimefield_value]
    return [_as_it_is]


def _as_it_is(value):
    return value


@dataclass(frozen=True)
class _Value:
    name: str
    kind: type
    nullable: bool


@dataclass
class _Built:
    sql: str
    params: tuple
    places: list[tuple[str, list[int], typing.Callable]]  # value, its parameters, adapter
    read: typing.Callable | None  # rows -> result, for a select


class _Statement:
    def __init__(self, build, values: dict[str, type]):
        self.build = build
        self.values = [_Value(name, *_kind_of(name, kind)) for name, kind in values.items()]
        # By database alias, vendor, and which nullable values are None.
        self._built: dict[tuple[str, str, frozenset], _Built] = {}
        update_wrapper(self, build)

    def __call__(self, **values):
        if set(values) != {value.name for value in self.values}:
            raise TypeError(f"{self.__name__} takes {[v.name for v in self.values]}")
        for value in self.values:  # None where it may not be goes on, to the database's refusal
            given = values[value.name]
            if value.kind is Decimal and type(given) is int:
                values[value.name] = Decimal(given)  # as the ORM takes it
            elif not isinstance(given, value.kind | None):
                raise TypeError(f"{self.__name__}: {value.name} is a {value.kind.__name__}")
        connection = connections[DEFAULT_DB_ALIAS]
        # None is SQL of its own ("= NULL" set, "IS NULL" compared): a statement per set of
        # values given as None.
        nones = frozenset(v.name for v in self.values if v.nullable and values[v.name] is None)
        key = (DEFAULT_DB_ALIAS, connection.vendor, nones)
        built = self._built.get(key)
        if built is None:
            built = self._built.setdefault(key, self._compile(connection, nones))
        params = list(built.params)
        for name, places, adapt in built.places:
            sent = adapt(values[name])
            for place in places:
                params[place] = sent
        return self._send(connection, built, params)

    def _compile(self, connection, nones: frozenset) -> _Built:
        stand_ins = {
            v.name: None if v.name in nones else _stand_in(v.kind, i, 0)
            for i, v in enumerate(self.values)
        }
        sql, params, read = self._sql(connection, stand_ins)
        again, params_again, _ = self._sql(connection, stand_ins)
        if (again, params_again) != (sql, params):
            raise ValueError(f"{self.__name__}: its SQL changes from one build to the next")
        places = []
        for index, value in enumerate(self.values):
            if value.name in nones:
                continue
            other = {**stand_ins, value.name: _stand_in(value.kind, index, 1)}
            changed_sql, changed, _ = self._sql(connection, other)
            if changed_sql != sql or len(changed) != len(params):
                raise ValueError(f"{self.__name__}: {value.name} changes its SQL")
            found = [i for i, (a, b) in enumerate(zip(params, changed, strict=True)) if a != b]
            if not found:
                raise ValueError(f"{self.__name__}: {value.name} is not in its SQL")
            adapt = next(
                (
                    adapt
                    for adapt in _adapters(connection, value.kind)
                    if all(params[i] == adapt(stand_ins[value.name]) for i in found)
                ),
                None,
            )
            if adapt is None:
                raise ValueError(f"{self.__name__}: {value.name} is sent rewritten")
            places.append((value.name, found, adapt))
        return _Built(sql, tuple(params), places, read)

    def _sql(self, connection, values: dict):
        raise NotImplementedError

    def _send(self, connection, built: _Built, params: list):
        raise NotImplementedError


class Select(_Statement):
    def _sql(self, connection, values: dict):
        queryset = self.build(**values)
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        return sql, list(params), _reader(queryset, compiler)

    def _send(self, connection, built: _Built, params: list):
        with connection.cursor() as cursor:
            cursor.execute(built.sql, params)
            return built.read(cursor.fetchall())


class Update(_Statement):
    def _sql(self, connection, values: dict):
        queryset, changes = self.build(**values)
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(changes)
        query.clear_select_clause()
        if query.related_updates:
            raise ValueError(f"{self.__name__}: an update of more than one table")
        sql, params = query.get_compiler(connection=connection).as_sql()
        return sql, list(params), None

    def _send(self, connection, built: _Built, params: list):
        with transaction.mark_for_rollback_on_error(DEFAULT_DB_ALIAS):
            with connection.cursor() as cursor:
                cursor.execute(built.sql, params)
                return cursor.rowcount


def select(build) -> Select:
    """Decorator: a function of typed values that returns a QuerySet, as a prepared select."""
    return Select(build, _declared(build))


def update(build) -> Update:
    """Decorator: a function of typed values that returns a QuerySet and the values its rows
    are set to, as a prepared update."""
    return Update(build, _declared(build))


def insert(instance: models.Model, *, conflict: str = "") -> bool:
    """Insert a new instance's row as `save()` would, with one statement built once per model
    (and `conflict` clause): its fields made ready as the ORM makes them (`pre_save`, then
    `get_db_prep_save`), its id set. No save signals are sent: it is for the models of every
    answer (Message, Run, UsageRecord), which have none (tests/test_prepared.py). The ORM's
    `create` builds the statement anew each time, 2 to 3 times the CPU (`python -m
    bench.statements`).

    `conflict`: an `ON CONFLICT ... DO NOTHING` clause; false when it kept the row out."""
    if instance.pk is not None or not instance._state.adding:
        raise ValueError("prepared.insert takes a new instance, without an id")
    instance._prepare_related_fields_for_save(operation_name="save")  # as save() does
    connection = connections[DEFAULT_DB_ALIAS]
    key = (type(instance), connection.vendor, conflict)
    built = _inserts.get(key)
    if built is None:
        built = _inserts.setdefault(key, _insert_of(type(instance), connection, conflict))
    sql, fields, returning = built
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if returning:
            row = cursor.fetchone()
            pk = None if row is None else row[0]
        else:
            pk = cursor.lastrowid if cursor.rowcount == 1 else None
    if pk is None:
        return False
    instance.pk = pk
    instance._state.adding, instance._state.db = False, DEFAULT_DB_ALIAS
    return True


_inserts: dict[tuple, tuple[str, list, bool]] = {}  # (model, vendor, conflict) -> built


def _insert_of(model: type[models.Model], connection, conflict: str) -> tuple[str, list, bool]:
    fields = [f for f in model._meta.concrete_fields if not f.primary_key and not f.generated]
    if any(f.has_db_default() for f in fields):
        raise ValueError(f"{model.__name__}: a database default is not sent by prepared.insert")
    quote = connection.ops.quote_name
    returning = connection.features.can_return_columns_from_insert
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)}"
        f" ({', '.join(quote(field.column) for field in fields)})"
        f" VALUES ({', '.join(['%s'] * len(fields))}){conflict}"
    ) + (f" RETURNING {quote(model._meta.pk.column)}" if returning else "")
    return sql, fields, returning


def field_kind(model: type[models.Model], name: str) -> type:
    """The declared kind of a value for `model`'s field `name` (its column's name for a
    foreign key): for statements whose fields are known only when they run."""
    field = model._meta.get_field(name)
    if field.is_relation:
        field = field.target_field
    kind = next(
        k
        for k, fields in [
            (bool, models.BooleanField),
            (int, models.IntegerField),  # AutoField and its kin among them
            (datetime, models.DateTimeField),
            (Decimal, models.DecimalField),
            (str, models.CharField | models.TextField),
        ]
        if isinstance(field, fields)
    )
    return kind | None if field.null else kind


def _declared(build) -> dict[str, type]:
    annotations = inspect.get_annotations(build, eval_str=True)
    names = inspect.signature(build).parameters
    missing = [name for name in names if name not in annotations]
    if missing:
        raise TypeError(f"{build.__name__}: declare the kind of {missing}")
    return {name: annotations[name] for name in names}


def _kind_of(name: str, declared) -> tuple[type, bool]:
    kinds = set(typing.get_args(declared)) if isinstance(declared, types.UnionType) else {declared}
    nullable = type(None) in kinds
    kinds.discard(type(None))
    if len(kinds) != 1 or (kind := kinds.pop()) not in KINDS:
        raise TypeError(f"{name}: one of {KINDS}, or one of them | None")
    return kind, nullable


def _reader(queryset, compiler):
    """What turns the rows of `queryset`'s SQL into what the QuerySet would give, with the
    compiler that made the SQL (as Django's iterables do, query.py)."""
    db = queryset.db
    fields = [column[0] for column in compiler.select[: compiler.col_count]]
    converters = compiler.get_converters(fields)

    def converted(rows):
        return list(compiler.apply_converters(rows, converters)) if converters else rows

    iterable = queryset._iterable_class
    if iterable is ModelIterable:
        if queryset._known_related_objects or queryset._prefetch_related_lookups:
            raise ValueError("a prepared select loads no related objects but select_related's")
        klass_info, annotations = compiler.klass_info, compiler.annotation_col_map
        model, first = klass_info["model"], klass_info["select_fields"][0]
        end = klass_info["select_fields"][-1] + 1
        names = [column[0].target.attname for column in compiler.select[first:end]]

        populators = get_related_populators(klass_info, compiler.select, db)

        def read(rows):
            objects = []
            for row in converted(rows):
                obj = model.from_db(db, names, row[first:end])
                for populator in populators:
                    populator.populate(row, obj)
                for name, place in (annotations or {}).items():
                    setattr(obj, name, row[place])
                objects.append(obj)
            return objects

        return read
    query = queryset.query
    names = [*query.extra_select, *query.values_select, *query.annotation_select]
    if iterable is ValuesIterable:
        return lambda rows: [dict(zip(names, row, strict=True)) for row in converted(rows)]
    if iterable is FlatValuesListIterable:
        return lambda rows: [row[0] for row in converted(rows)]
    if iterable is ValuesListIterable:
        if queryset._fields and list(queryset._fields) != names[: len(queryset._fields)]:
            raise ValueError("name a values_list()'s annotations after its fields")
        return lambda rows: [tuple(row) for row in converted(rows)]
    raise ValueError(f"no prepared select for {iterable.__name__}")
