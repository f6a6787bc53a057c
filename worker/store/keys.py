"""Every Redis key the worker owns, in one place.

All keys start with ``[redis] key_prefix`` (default ``omitama:``); dramatiq's own
keys live under ``[redis] namespace`` (:mod:`worker.store.queue_keys`).

==========================  =====  ===========================================  ==========================
key                         type   content                                      lifetime
==========================  =====  ===========================================  ==========================
hold:{hold_id}              hash   a hold notice's state; fields listed below;   pickup_by + [retention]
                                   title and name dropped when the hold closes  hold_days
notice:{token}              str    hold_id of the notice with Message-ID token  as its hold
calls                       hash   hold_id → JSON entry of the phone-call list  until called, closed or past pickup
calls:due                   zset   hold_id, score = pickup_by as YYYYMMDD       with ``calls``
inflight                    zset   hold_id → ms after which the sweeper looks at it  while sending/retrying
called                      list   JSON of each call staff marked done          [retention] called_days
patron:{card}               hash   contact state, approved and pending address, kept
                                   hashed receipt code (worker/contact/changes.py),
                                   last_sent_hold, last_sent_ms (below)
pending                     zset   card, score = registered_at ms (oldest first) while pending
address:{key}               set    cards holding this address (pending/active)  while any card does
audit:{card}                list   JSON audit entries, append-only              [retention] audit_days
failures                    list   JSON delivery failures, append-only          [retention] failures_days
bouncescore:{key}           zset   day (YYYY-MM-DD) → bounce points given that  stale_after_days + 1 day
                                   day, per address key
bounces                     list   JSON of every ingested mail and its outcome  [retention] bounces_days
bounces:seen                set    fingerprints of ingested mails (dedup)       as their ``bounces`` entry
bounces:taking:{fp}         str    the reader ingesting a mail now (one at a     60 s (a reader killed mid-mail)
                                   time; worker/app/ingest.py)
bounces:watch:{mailbox}     str    the one ``bounces watch`` of a mailbox:       30 s, renewed by the watch
                                   token, pid, host (store/watch_lock.py)
bounces:reasons             hash   reason → failures recorded (metrics)         kept
sender:problem              hash   the open alert of a failure caused by our     until staff close it
                                   sender (worker/app/sender_problems.py): last
                                   (JSON), first_at, count
sender:cards                set    cards whose mail a sender problem stopped    with ``sender:problem``
sender:closed               list   JSON of each alert staff closed: who, when,  kept (audit)
                                   its count, patrons, first and last failure,
                                   reason (no card, no diagnostic)
bounces:weak:{key}:{day}    str    unverified bounces counted for an address    2 days
                                   that day (rate limit, worker/app/ingest.py)
bounces:overcap             str    unverified bounces past the daily cap: counted, kept
                                   never stored (no ``bounces`` row, no ``seen``)
verp:{token}                str    JSON of what a mail token was issued for     [bounces] token_days
                                   (a return path's; the Message-ID's of a
                                   reminder or confirmation): kind, card, address
suspended                   set    cards whose address is suspended (metrics)   while suspended
sent:{card}                 list   hold ids of the last notices mailed to card  20 newest
rejected                    hash   fingerprint → JSON of a refused event        [retention] refused_days
rejected:order              zset   fingerprint, score = arrival µs              with ``rejected``
staff:{staff_id}            hash   staff web account: password hash (argon2),   until ``staff remove``
                                   branch, created_at (worker/store/staff.py)
stafflog                    list   JSON of each account change (created,        kept (audit)
                                   password set, removed) and who made it
purge:day:{YYYY-MM-DD}      str    the daily purge of that day was taken (SET NX) 3 days
purge:last                  str    JSON report of the last purge (counts by kind) kept (replaced daily)
web:session:{sid}           hash   staff web session: staff id, CSRF token,     session_max_age_s
                                   account epoch, created_at, last seen;        (or idle, or epoch
                                   deleted on logout                            changed)
web:sessions:{staff_id}     set    session ids of a staff member                session_max_age_s
web:login_fail:{kind}:{who} str    failed logins per staff id, client address,  login_window_s
                                   (client, id) pair, total
web:login_wait:{who}        str    a slowed-down (client, id) pair waits        ≤ 60 s
web:login_known:{staff_id}  set    client addresses that logged in as staff_id  90 days
web:login_missed:{staff_id} str    failed logins since the last good one        30 days
queue:secret                str    HMAC key signing the worker's own queue      kept (created once,
                                   messages (worker/queue/internal.py)          SET NX)
secret:notice               str    HMAC key notice tokens (Message-IDs) are     kept (created once,
                                   derived from (worker/store/kept_secrets.py)  SET NX)
gather:{branch}:{card}      hash   the open digest window of a card at a pickup  gather_s + 1 day
                                   branch: id, due (ms), opener (the hold that
                                   opened it), h:{hold_id} per member
                                   (worker/app/digest.py)
gather_due                  zset   "{gather id} {branch} {card}" of each open    until taken
                                   window, score = its end (ms): polled by every
                                   process (worker/queue/windows.py)
gather_taken:{token}        str    the holds a digest's take took (comma-        the digest's lease
                                   separated), so the same take repeated (a lost
                                   reply) answers them again (gather_take.lua)
reminders                   zset   hold_id of a mailed hold, score = ms of its  until sent or pickup_by
                                   pickup reminder (worker/app/reminders.py)
outcomes                    stream every outcome of a hold, for the ILS          ~[outcomes] maxlen entries
                                   (worker/store/outcomes.py)
replicas:mark               str    a counter each staff action confirmed by     kept
                                   replicas increments just before its WAIT
                                   (worker/store/replicas.py)
stats:day:{YYYY-MM-DD}      hash   "{branch}|{metric}" → count of that Tokyo day  [retention] stats_days
                                   (worker/stats/fields.py); written by the
                                   outcome scripts and the contact changes
==========================  =====  ===========================================  ==========================

Fields of ``hold:{hold_id}``, by who writes them (the scripts are in ``lua/``):

- ``claim_hold.lua``: ``status`` (sending), ``lease_until`` (ms), ``token`` (the latest
  claim's: only it may finish), ``notice`` (the Message-ID's token, derived from the
  hold id at the first claim: worker/mail/compose.py ``notice_token``), ``attempts``,
  ``first_ms``; and the fields the caller passes: ``event`` (JSON),
  ``card_number``, ``pickup_branch``, ``pickup_by`` (worker/app/holds.py).
- ``extend_lease.lua``: ``lease_until``.
- ``finish_hold.lua``: ``status`` (sent | phoned | retrying), drops
  ``lease_until``; the caller's fields: ``message_id``, ``sent_ms``, ``to`` (masked),
  ``relay_reply`` when sent; ``reason`` when phoned; ``last_error`` and ``retry_ms`` (when
  the retry is due; ``claim_hold.lua`` drops it) when retrying. On
  "sent" it also sets ``last_sent_hold`` and ``last_sent_ms`` on ``patron:{card}``.
- ``close_hold.lua``: ``status`` (cancelled | picked_up), or ``closed`` when the patron
  was told already (sent, called); ``closed_ms``; drops the title and name (the event's
  reading data, worker/holds/retention.py), as ``mark_called.lua`` does.
- ``purge_hold.lua`` (the daily purge): drops the same; ``closed`` (expired) for a hold
  whose pickup window passed, which also leaves the call list.
- ``mark_called.lua``: ``status`` (called), ``called_ms``, ``called_entry`` (the call
  list entry, JSON), ``called_due``, ``called_from`` (the status before);
  ``uncall.lua`` puts ``status`` back from ``called_from`` and drops those four.
- ``rephone_hold.lua`` (a sent notice bounced): ``status`` (phoned), ``reason``.
- ``gather_join.lua`` / ``gather_take.lua`` (digests, worker/app/digest.py): ``gather``
  (the window's id), ``digest`` (the digest's token); ``finish_hold.lua`` then also
  ``digest_holds`` (every hold of the mail, comma-separated); ``gather_crash.lua`` (the
  digest's send raised after its take): ``crashes`` (how many times), ``crash`` (the
  error's last line).
- ``remind_take.lua`` / ``remind_done.lua`` (pickup reminders): ``reminding``,
  ``reminding_until``, then ``reminded_ms`` and ``reminder_id``.
- for the statistics (worker/stats/fields.py), the send path passes ``carrier`` (docomo,
  au, softbank, other) with a sent notice or a refusal, and ``bounce_reason`` with a
  refusal; the outcome wrapper's ``mark_called`` step notes ``called_stats`` (the day's
  key it counted in), which ``uncall`` takes back and drops.

dramatiq's own keys (under ``[redis] namespace``) are named in
:mod:`worker.store.queue_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "omitama:"

    def hold(self, hold_id: str) -> str:
        return f"{self.prefix}hold:{hold_id}"

    def notice(self, token: str) -> str:
        return f"{self.prefix}notice:{token}"

    @property
    def calls(self) -> str:
        return f"{self.prefix}calls"

    @property
    def calls_due(self) -> str:
        return f"{self.prefix}calls:due"

    @property
    def inflight(self) -> str:
        return f"{self.prefix}inflight"

    @property
    def called(self) -> str:
        return f"{self.prefix}called"

    def patron(self, card: str) -> str:
        return f"{self.prefix}patron:{card}"

    @property
    def pending(self) -> str:
        return f"{self.prefix}pending"

    def address(self, key: str) -> str:
        return f"{self.prefix}address:{key}"

    def audit(self, card: str) -> str:
        return f"{self.prefix}audit:{card}"

    @property
    def failures(self) -> str:
        return f"{self.prefix}failures"

    def bounce_score(self, address_key: str) -> str:
        return f"{self.prefix}bouncescore:{address_key}"

    @property
    def bounces(self) -> str:
        return f"{self.prefix}bounces"

    @property
    def bounces_seen(self) -> str:
        return f"{self.prefix}bounces:seen"

    @property
    def bounce_reasons(self) -> str:
        return f"{self.prefix}bounces:reasons"

    @property
    def sender_problem(self) -> str:
        return f"{self.prefix}sender:problem"

    @property
    def sender_cards(self) -> str:
        return f"{self.prefix}sender:cards"

    @property
    def sender_closed(self) -> str:
        return f"{self.prefix}sender:closed"
    def bounce_taking(self, fingerprint_hash: str) -> str:
        return f"{self.prefix}bounces:taking:{fingerprint_hash}"

    def bounce_watch(self, mailbox_id: str) -> str:
        return f"{self.prefix}bounces:watch:{mailbox_id}"

    @property
    def bounces_over_cap(self) -> str:
        return f"{self.prefix}bounces:overcap"

    def bounces_weak(self, address_key: str, day: str) -> str:
        return f"{self.prefix}bounces:weak:{address_key}:{day}"

    def verp(self, token: str) -> str:
        return f"{self.prefix}verp:{token}"

    @property
    def suspended(self) -> str:
        return f"{self.prefix}suspended"

    def sent(self, card: str) -> str:
        return f"{self.prefix}sent:{card}"

    @property
    def rejected(self) -> str:
        return f"{self.prefix}rejected"

    @property
    def rejected_order(self) -> str:
        return f"{self.prefix}rejected:order"

    def staff(self, staff_id: str) -> str:
        return f"{self.prefix}staff:{staff_id}"

    @property
    def staff_log(self) -> str:
        # not under "staff:": "log" is a valid staff id, and `staff list` scans staff:*
        return f"{self.prefix}stafflog"

    def purge_day(self, day: str) -> str:
        return f"{self.prefix}purge:day:{day}"

    @property
    def purge_last(self) -> str:
        return f"{self.prefix}purge:last"

    def web_session(self, sid: str) -> str:
        return f"{self.prefix}web:session:{sid}"

    def login_failures(self, kind: str, who: str) -> str:
        """``kind`` is ``staff`` (a staff id) or ``addr`` (a client address)."""
        return f"{self.prefix}web:login_fail:{kind}:{who}"

    def staff_sessions(self, staff_id: str) -> str:
        return f"{self.prefix}web:sessions:{staff_id}"

    def login_wait(self, who: str) -> str:
        return f"{self.prefix}web:login_wait:{who}"

    def login_known(self, staff_id: str) -> str:
        return f"{self.prefix}web:login_known:{staff_id}"

    def login_missed(self, staff_id: str) -> str:
        return f"{self.prefix}web:login_missed:{staff_id}"

    @property
    def queue_secret(self) -> str:
        return f"{self.prefix}queue:secret"

    @property
    def notice_secret(self) -> str:
        return f"{self.prefix}secret:notice"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}outcomes"

    def gather(self, card: str, branch: str) -> str:
        return f"{self.prefix}gather:{branch}:{card}"

    @property
    def gather_due(self) -> str:
        return f"{self.prefix}gather_due"

    def gather_taken(self, token: str) -> str:
        return f"{self.prefix}gather_taken:{token}"

    @property
    def reminders(self) -> str:
        return f"{self.prefix}reminders"

    @property
    def replicas_mark(self) -> str:
        return f"{self.prefix}replicas:mark"

    def stats_day(self, day: str) -> str:
        # the outcome scripts derive it from the stream's key: keep the two in step
        # (worker/store/outcomes.py, lua/remind_done.lua)
        return f"{self.prefix}stats:day:{day}"
