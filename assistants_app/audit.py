"""The audit log: every change to an account, its per-user limits, a group or an assistant, through
admin, the site, a sign-in or a command, becomes an AuditEntry saying who, when, where from
and what changed (old and new value per field; passwords only as "changed").

Model signals catch every path that saves (admin's forms, bulk actions and inlines alike);
`AuditMiddleware` tells them who is asking. Django's own admin LogEntry stays as it is, but
it is no audit log: it keeps a sentence per admin action, not the values, and nothing done
outside admin.
"""

import contextvars
import json
from inspect import iscoroutinefunction

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.utils.decorators import sync_and_async_middleware

from .models import Assistant, AuditEntry, UsageLimit

_request = contextvars.ContextVar("audit_request", default=None)
IGNORED_FIELDS = {"last_login", "updated_at", "created_at", "date_joined"}
SECRET_FIELDS = {"password"}
MAX_VALUE_CHARS = 2000


@sync_and_async_middleware
def AuditMiddleware(get_response):  # noqa: N802 (named like a class in settings)
    """Remembers the request being served, so a change can name who made it."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            token = _request.set(request)
            try:
                return await get_response(request)
            finally:
                _request.reset(token)

    else:

        def middleware(request):
            token = _request.set(request)
            try:
                return get_response(request)
            finally:
                _request.reset(token)

    return middleware


def record(action: str, target_type: str, target_id, target_name: str, changes=None) -> None:
    """Write one entry, naming whoever the current request belongs to (none: the system)."""
    request = _request.get()
    actor, via = None, "system"
    if request is not None:
        via = _where(request.path)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    actor_name = actor.get_username() if actor else ""
    if actor and target_type == "user" and str(actor.pk) == str(target_id) and action == "deleted":
        actor = None  # someone deleting their own account: the row is gone, the name stays
    AuditEntry.objects.create(
        actor=actor,
        actor_name=actor_name,
        via=via,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        target_name=str(target_name)[:200],
        changes=changes or {},
    )


def update_each(queryset, **values) -> int:
    """`queryset.update(**values)` one row at a time, so the log sees each change (a bulk
    update sends no signals); how many rows changed."""
    changed = 0
    for instance in queryset:
        if all(getattr(instance, name) == value for name, value in values.items()):
            continue
        for name, value in values.items():
            setattr(instance, name, value)
        instance.save()
        changed += 1
    return changed


def _where(path: str) -> str:
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/oidc/"):
        return "sign-in"
    return "site"


# --- What is watched ----------------------------------------------------------------------


def _user_target(user) -> tuple[str, object, str]:
    return "user", user.pk, user.get_username()


def _limit_target(limit) -> tuple[str, object, str]:
    return "user limits", limit.user_id, str(limit.user)


def _assistant_target(assistant) -> tuple[str, object, str]:
    return "assistant", assistant.pk, assistant.name


def _group_target(group) -> tuple[str, object, str]:
    return "group", group.pk, group.name


WATCHED = {}  # model -> how to name its rows in the log


def connect() -> None:
    """Called once from AppConfig.ready()."""
    WATCHED.update(
        {
            get_user_model(): _user_target,
            UsageLimit: _limit_target,
            Assistant: _assistant_target,
            Group: _group_target,  # its members reach its assistants
        }
    )
    for model in WATCHED:
        pre_save.connect(_remember_before, sender=model, dispatch_uid=f"audit-pre-{model}")
        post_save.connect(_after_save, sender=model, dispatch_uid=f"audit-save-{model}")
        post_delete.connect(_after_delete, sender=model, dispatch_uid=f"audit-del-{model}")
    m2m_fields = [(get_user_model(), "groups"), (get_user_model(), "user_permissions"),
                  (Assistant, "groups"), (Group, "permissions")]  # fmt: skip
    for model, name in m2m_fields:
        through = model._meta.get_field(name).remote_field.through
        m2m_changed.connect(_after_m2m, sender=through, dispatch_uid=f"audit-m2m-{through}")


def _values(instance) -> dict:
    values = {}
    for field in instance._meta.concrete_fields:
        if field.name in IGNORED_FIELDS or field.primary_key:
            continue
        values[field.name] = _plain(getattr(instance, field.attname))
    return values


def _plain(value):
    """A value as JSON can keep it, long text cut."""
    try:
        json.dumps(value)
    except TypeError:
        value = str(value)
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        value = value[:MAX_VALUE_CHARS] + "…"
    return value


def _masked(name: str, value):
    if name not in SECRET_FIELDS or not value:
        return value
    return "(none)" if value.startswith("!") else "(set)"  # "!": Django's unusable password


def _remember_before(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    if raw or instance.pk is None:
        return
    if update_fields is not None and set(update_fields) <= IGNORED_FIELDS:
        instance._audit_before = None  # a login's last_login: nothing to compare, nor log
        instance._audit_skip = True
        return
    instance._audit_skip = False
    before = sender._default_manager.filter(pk=instance.pk).first()
    instance._audit_before = _values(before) if before is not None else None


def _after_save(sender, instance, created, raw=False, update_fields=None, **kwargs) -> None:
    if raw or getattr(instance, "_audit_skip", False):
        return
    target = WATCHED[sender](instance)
    after = _values(instance)
    before = getattr(instance, "_audit_before", None)
    instance._audit_before = after
    if created or before is None:
        changes = {name: _masked(name, value) for name, value in after.items() if value not in
                   ("", None, [], {})}  # fmt: skip
        record(AuditEntry.Action.CREATED, *target, changes)
        return
    changes = {}
    for name, value in after.items():
        if before.get(name) != value:
            if name in SECRET_FIELDS:
                changes[name] = "changed"
            else:
                changes[name] = {"from": before.get(name), "to": value}
    if changes:
        record(AuditEntry.Action.CHANGED, *target, changes)


def _after_delete(sender, instance, **kwargs) -> None:
    record(AuditEntry.Action.DELETED, *WATCHED[sender](instance))


def _after_m2m(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    owner, field = _m2m_field(sender)
    if action == "pre_clear":
        instance._audit_cleared = _related_pks(sender, field, instance, reverse)
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    pks = getattr(instance, "_audit_cleared", set()) if action == "post_clear" else pk_set
    if not pks:
        return
    verb = "added" if action == "post_add" else "removed"
    if reverse:
        # Changed from the other side (a group's members, say): an entry for each person or
        # assistant changed, as if changed from their side.
        for target in owner._default_manager.filter(pk__in=pks):
            changes = {field.name: {verb: [str(instance)]}}
            record(AuditEntry.Action.CHANGED, *WATCHED[owner](target), changes)
        return
    names = sorted(str(obj) for obj in field.related_model._default_manager.filter(pk__in=pks))
    changes = {field.name: {verb: names}}
    record(AuditEntry.Action.CHANGED, *WATCHED[owner](instance), changes)


def _m2m_field(through):
    for model in WATCHED:
        for field in model._meta.many_to_many:
            if field.remote_field.through is through:
                return model, field
    raise LookupError(through)


def _related_pks(through, field, instance, reverse) -> set:
    source, target = field.m2m_field_name(), field.m2m_reverse_field_name()
    if reverse:
        return set(through.objects.filter(**{target: instance}).values_list(source, flat=True))
    return set(through.objects.filter(**{source: instance}).values_list(target, flat=True))
