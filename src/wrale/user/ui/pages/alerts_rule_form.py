"""The alert-rule form as typed (pure): its fields, durations as words, the
condition checked with the brain's own rule checks, and the preview of what it will watch."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import FormData

from wrale.fleet.brain.models.alerts import AlertRule
from wrale.fleet.brain.services.alert_rules import (
    METRIC_RE,
    OPS,
    Condition,
    check_for,
    check_threshold,
    describe,
    parse_duration,
)
from wrale.shared.errors import ConflictError, InvalidRequestError
from wrale.user.ui.pages.alerts_common import (
    FIELD_RE,
    OP_WORDS,
    RACK_PREFIX,
    RULE_FORM_FIELDS,
    form_str,
    unit_of,
)


@dataclass
class RuleForm:
    """The rule form as typed (kept as text so a refused form comes back unchanged)."""

    name: str = ""
    description: str = ""
    metric: str = "cpu_temp_c"  # RACK_PREFIX + metric for a rack's summed value
    op: str = ">"
    threshold: str = ""
    budget: bool = False
    for_s: str = ""
    severity: str = "WARNING"
    scope_type: str = "fleet"
    scope_id: str = ""  # a device scope: the device's name
    enabled: bool = True
    channel_ids: list[str] = field(default_factory=list)

    @property
    def is_rack(self) -> bool:
        return self.metric.startswith(RACK_PREFIX)

    @classmethod
    def of_form(cls, form: FormData) -> RuleForm:
        return cls(
            name=form_str(form, "name", 200),
            description=form_str(form, "description", 1000),
            metric=form_str(form, "metric", 100).strip(),
            op=form_str(form, "op", 4).strip(),
            threshold=form_str(form, "threshold", 100).strip(),
            budget=bool(form_str(form, "budget")),
            for_s=form_str(form, "for_s", 100).strip(),
            severity=form_str(form, "severity", 16).strip().upper(),
            scope_type=form_str(form, "scope_type", 16).strip(),
            scope_id=form_str(form, "scope_id", 100).strip(),
            enabled=bool(form_str(form, "enabled")),
            channel_ids=[v[:32] for v in form.getlist("channel_ids") if isinstance(v, str)][:20],
        )

    @classmethod
    def of_rule(cls, r: AlertRule, scope_text: str) -> RuleForm:
        budget = r.threshold is None
        return cls(
            name=r.name,
            description=r.description or "",
            metric=(RACK_PREFIX if r.aggregate == "rack_sum" else "") + r.metric,
            op=r.op,
            threshold="" if budget else f"{r.threshold:g}",
            budget=budget,
            for_s=format_duration(r.for_s),
            severity=r.severity,
            scope_type=r.scope_type,
            scope_id=scope_text,
            enabled=r.enabled,
            channel_ids=list(r.channel_ids or []),
        )


def format_duration(seconds: float) -> str:
    """300 → "5m", 5400 → "1h30m", 0 → "" (the inverse of ``parse_duration``)."""
    if seconds <= 0:
        return ""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    s, out = int(seconds), ""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out


def error_message(exc: InvalidRequestError | ConflictError) -> tuple[str | None, str]:
    """(form field, message without its "field: " prefix) of a service error."""
    m = FIELD_RE.match(exc.message)
    name = str(exc.details.get("field") or (m.group(1) if m else ""))
    text = m.group(2) if m else exc.message
    name = {"for": "for_s", "expression": "metric", "aggregate": "metric"}.get(name, name)
    if isinstance(exc, ConflictError) and "named" in exc.message:
        name = "name"
    return (name if name in RULE_FORM_FIELDS else None), text[:1].upper() + text[1:]


def check_condition(f: RuleForm) -> tuple[Condition | None, dict[str, str]]:
    """The condition of the form and each field's error, with ``alert_rules``' own checks
    (per-metric threshold ranges, minimum durations). Pure: no database."""
    errors: dict[str, str] = {}
    metric = f.metric.removeprefix(RACK_PREFIX)
    summed = f.is_rack
    if not METRIC_RE.match(metric):
        errors["metric"] = "Choose a metric (lower case letters, digits and _)."
    if f.op not in OPS:
        errors["op"] = f"Choose one of {' '.join(OPS)}."
    threshold: float | None = None
    if (f.budget and summed) or f.threshold.lower() == "budget":
        if not (summed and metric == "power_w"):
            errors["threshold"] = (
                "Only the rack power rule (rack power_w) can compare with the rack's budget; "
                "give a number."
            )
    elif not f.threshold:
        errors["threshold"] = "Give a threshold (a number)."
    else:
        try:
            threshold = float(f.threshold)
        except ValueError:
            errors["threshold"] = f"{f.threshold!r} is not a number."
        else:
            if "metric" not in errors:
                try:
                    check_threshold(metric, threshold, summed=summed)
                except InvalidRequestError as exc:
                    errors["threshold"] = error_message(exc)[1]
    for_s = 0.0
    try:
        for_s = parse_duration(f.for_s) if f.for_s else 0.0
        check_for(for_s)
    except InvalidRequestError as exc:
        errors["for_s"] = error_message(exc)[1]
    if errors:
        return None, errors
    aggregate = "rack_sum" if summed else "device"
    return Condition(metric, f.op, threshold, for_s, aggregate), {}


def preview_text(f: RuleForm) -> tuple[str, str | None]:
    """(the condition in the rule language, or the first thing to fix)."""
    cond, errors = check_condition(f)
    if cond is None:
        return "", next(iter(errors.values()))
    text = describe(cond)
    unit = unit_of(cond.metric)
    limit = "the rack's power budget" if cond.threshold is None else f"{cond.threshold:g} {unit}"
    words = f"{cond.metric} {OP_WORDS[cond.op]} {limit.strip()}"
    if cond.for_s:
        words += f" for {format_duration(cond.for_s)}"
    return f"{text}  ({words})", None
