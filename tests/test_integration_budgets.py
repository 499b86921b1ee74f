"""A group budget across processes: two daphne servers on one PostgreSQL database, and a
burst of the group's members sending at once through both. The ledger in the database is the
truth: exactly as many answers start as the budget holds."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from .live import SiteClient, postgres_database, start_site

pytestmark = pytest.mark.slow

MEMBERS = 10
PASSWORD = "member-password-1"
BUDGET = 3000  # each run is reserved ~1000 tokens (an estimate, the runs never finish): 3 fit

SEED = f"""
from django.contrib.auth.models import Group
from django.contrib.auth import get_user_model
from assistants_app.models import GroupBudget
lab = Group.objects.create(name="Lab")
GroupBudget.objects.create(group=lab, tokens_per_day={BUDGET})
for n in range({MEMBERS}):
    lab.user_set.add(get_user_model().objects.create_user(f"member{{n}}", password={PASSWORD!r}))
"""


@pytest.fixture
def two_servers_on_postgres(tmp_path):
    with postgres_database(migrated=True) as database_url:
        env = {"DATABASE_URL": database_url, "MESSAGES_PER_MINUTE": "0"}
        with start_site(tmp_path, env=env, faults=("stuck",), servers=2) as site:
            site.manage("shell", "--verbosity", "0", "-c", SEED)
            yield site


def test_a_burst_across_two_servers_does_not_overshoot_the_group_budget(two_servers_on_postgres):
    site = two_servers_on_postgres
    members = [
        SiteClient(site, f"member{n}", url=site.urls[n % 2], password=PASSWORD)
        for n in range(MEMBERS)
    ]
    threads = [member.start_thread("Sim stuck") for member in members]

    with ThreadPoolExecutor(max_workers=MEMBERS) as pool:
        responses = list(pool.map(lambda m, t: m.post(t, "hi"), members, threads))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 3 + [429] * (MEMBERS - 3), statuses
    refused = next(r for r in responses if r.status_code == 429).json()["error"]
    assert refused["code"] == "GROUP_BUDGET_SPENT"
    charged = site.query("sorted(UsageRecord.objects.values_list('charged_tokens', flat=True))")
    assert len(charged) == 3 and sum(charged) < BUDGET + max(charged)
