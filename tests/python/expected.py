"""What the mock PersistIq account (tests/support/mock.rs, default Options) holds.

Every stream `discover` lists must have an entry in EXPECTED_COUNTS: a new
stream fails the tests until its count, taken from mock.rs, is added here.
"""

# Records per stream served by `demo --serve` (Options::default() in mock.rs).
EXPECTED_COUNTS = {
    "users": 3,
    "leads": 1234,
    "campaigns": 150,
    "lead_statuses": 5,
    "lead_fields": 6,
    "dnc_domains": 230,
    "tags": 12,
    "events": 1234,
    # Campaign 0 has 150 leads, campaign c > 0 has c % 3: 150 + 150.
    "campaign_leads": 300,
    # Campaign 5 has 230 replies, campaign c != 5 has c % 4: 230 + 223 - 1.
    "replies": 452,
}

# Records with awkward text, as mock.rs builds them (user(1), lead(1), campaign(4)).
USER_1 = {
    "id": "u_000001",
    "name": 'O\'Brien "The Closer"',
    "email": "user1@punctual.cc",
    "activated": True,
    "default_mailbox_id": "mbox_000001",
    "salesforce_id": None,
}
LEAD_1 = {
    "id": "l_000001",
    "status": "replied",
    "owner_id": "u_000001",
    "sent_count": 1,
    "last_sent_at": "2026-02-11T13:20:05.000-07:00",
    "email": "lead1@example.com",
    "last_name": 'O\'Brien "The Closer"',
    "company_name": "Company 1 Zoë Ångström",
}
CAMPAIGN_4 = {
    "id": "c_000004",
    "name": "Campaign 4: emoji 🚀🔥 and 日本語",
    "total_prospects": 12,
}


def lead_id(i: int) -> str:
    """mock.rs `id("l", i)`: 6 base-62 digits."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    tail = ""
    for _ in range(6):
        tail = alphabet[i % 62] + tail
        i //= 62
    return f"l_{tail}"


def leads_without_owner() -> int:
    """mock.rs `lead()`: no owner when i % 7 == 0."""
    return sum(1 for i in range(EXPECTED_COUNTS["leads"]) if i % 7 == 0)


def count_of(stream: str) -> int:
    assert stream in EXPECTED_COUNTS, f"add the mock's record count for {stream!r} to tests/python/expected.py"
    return EXPECTED_COUNTS[stream]
