"""Operator roles and what each may see and do: one table, checked by every page."""

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    marketer = "marketer"
    support = "support"
    privacy = "privacy"


class Permission(StrEnum):
    view_customers = "view_customers"
    read_tickets = "read_tickets"  # ticket subjects and text: personal, not for marketing
    read_access_log = "read_access_log"
    read_audit_log = "read_audit_log"  # who changed what: partners, operators, launches, erasures
    view_analytics = "view_analytics"
    view_segments = "view_segments"
    view_campaigns = "view_campaigns"
    export_and_erase = "export_and_erase"
    work_tickets = "work_tickets"
    view_partners = "view_partners"  # the partners and their disclosure ledgers
    manage_partners = "manage_partners"  # register and delete partners
    manage_operators = "manage_operators"


ROLE_LABELS = {
    Role.admin: "Administrator",
    Role.marketer: "Marketer",
    Role.support: "Support agent",
    Role.privacy: "Privacy officer",
}

GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.view_customers: frozenset(Role),
    Permission.read_tickets: frozenset({Role.admin, Role.support, Role.privacy}),
    Permission.read_access_log: frozenset({Role.admin, Role.privacy}),
    Permission.read_audit_log: frozenset({Role.admin, Role.privacy}),
    Permission.view_analytics: frozenset({Role.admin, Role.marketer}),
    Permission.view_segments: frozenset({Role.admin, Role.marketer}),
    Permission.view_campaigns: frozenset({Role.admin, Role.marketer}),
    Permission.export_and_erase: frozenset({Role.admin, Role.privacy}),
    Permission.work_tickets: frozenset({Role.admin, Role.support}),
    Permission.view_partners: frozenset({Role.admin, Role.privacy}),
    Permission.manage_partners: frozenset({Role.admin}),
    Permission.manage_operators: frozenset({Role.admin}),
}


def may(role: Role, permission: Permission) -> bool:
    """Whether an operator of `role` has `permission`."""
    return role in GRANTS[permission]
