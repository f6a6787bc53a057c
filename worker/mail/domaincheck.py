"""``omitama-notify check domain``: is our sending domain set up so receivers accept us?

For the From domain and the return-path (envelope) domain it looks up, with dnspython
against ``[domain_check] resolver`` (or the system's):

* SPF: one ``v=spf1`` record, evaluated by pyspf for each of ``[domain_check]
  relay_addresses`` (the relay's outgoing addresses); ``+all`` / ``?all`` named;
* DKIM: the selector's key, compared with the public half of our ``[dkim] key_file``;
* DMARC: the policy, and whether From aligns with DKIM ``d=`` and with the return path
  (relaxed alignment, approximated without the public-suffix list: equal domains or
  one a subdomain of the other);
* MX of the return-path domain: DSNs must find their way back.

Every line says what was found in plain words and, when something is wrong, what to
ask the city's DNS administrator for. The judgements are pure functions of the records
(:func:`spf_lines`, :func:`dkim_lines`, :func:`dmarc_lines`, :func:`mx_lines`); only
:class:`Dns` talks to the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.resolver
import spf

from ..settings import Settings
from .dkim import read_private_key, same_public_key


@dataclass(frozen=True)
class Line:
    ok: bool | None     # True fine, False a fault that loses mail, None a warning
    topic: str          # "SPF city.omitama.ibaraki.jp"
    said: str           # what was found, in plain words
    ask: str = ""       # what to ask the DNS administrator for

    def text(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[self.ok]
        ask = f"\n      → ask the DNS administrator: {self.ask}" if self.ask else ""
        return f"{mark}  {self.topic}: {self.said}{ask}"


class DnsError(Exception):
    """The DNS server did not answer (timeout, SERVFAIL): nothing can be judged."""


class Dns:
    """TXT and MX look-ups at one resolver; a missing name or record is an empty list."""

    def __init__(self, server: str = "", port: int = 53, timeout: float = 5.0) -> None:
        self.resolver = dns.resolver.Resolver(configure=not server)
        if server:
            self.resolver.nameservers = [server]
        self.resolver.port = port
        self.resolver.lifetime = timeout

    def _answer(self, name: str, rtype: str) -> list[object]:
        try:
            return list(self.resolver.resolve(name, rtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as e:
            raise DnsError(f"no answer for {name} {rtype} ({type(e).__name__})") from None

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
                for r in self._answer(name, "TXT")]

    def mx(self, name: str) -> list[str]:
        return [str(r.exchange).rstrip(".")  # type: ignore[attr-defined]
                for r in self._answer(name, "MX")]

    def spf_lookup(self, name: str, qtype: str, strict: bool = True,
                   timeout: float | None = None) -> list[tuple[tuple[str, str], object]]:
        """pyspf's DNSLookup signature, answered by this resolver."""
        out: list[tuple[tuple[str, str], object]] = []
        for r in self._answer(name, qtype):
            if qtype in ("A", "AAAA"):
                out.append(((name, qtype), r.address))  # type: ignore[attr-defined]
            elif qtype == "MX":
                out.append(((name, qtype), (r.preference, str(r.exchange))))  # type: ignore[attr-defined]
            elif qtype in ("TXT", "SPF"):
                out.append(((name, qtype), list(r.strings)))  # type: ignore[attr-defined]
            elif qtype == "PTR":
                out.append(((name, qtype), r.target.to_text(True)))  # type: ignore[attr-defined]
            elif qtype == "CNAME":
                out.append(((name, qtype), str(r.target)))  # type: ignore[attr-defined]
        return out


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def aligned(a: str, b: str, strict: bool = False) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if strict:
        return a == b
    return a == b or a.endswith("." + b) or b.endswith("." + a)


# -- SPF -------------------------------------------------------------------------------

def spf_records(txts: list[str]) -> list[str]:
    return [t for t in txts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]


def spf_lines(domain: str, txts: list[str], relay_ips: list[str],
              evaluate: "dict[str, str]") -> list[Line]:
    """``evaluate``: pyspf's result (pass, fail, softfail, neutral, …) per relay address."""
    topic = f"SPF {domain}"
    wanted = " ".join(f"ip4:{ip}" if ":" not in ip else f"ip6:{ip}" for ip in relay_ips) or "ip4:<the relay's address>"
    records = spf_records(txts)
    if not records:
        return [Line(False, topic, "no SPF record: receivers cannot tell our relay from a "
                     "forger, and carriers' なりすまし filters refuse such mail",
                     f'a TXT record at {domain}: "v=spf1 {wanted} -all"')]
    if len(records) > 1:
        return [Line(False, topic, f"{len(records)} SPF records: receivers treat that as an "
                     "error (permerror) and the check fails", "one v=spf1 record, the others merged into it")]
    record = records[0]
    lines: list[Line] = []
    last_all = [t for t in record.split()[1:] if re.fullmatch(r"[+?~-]?all", t.lower())]
    if last_all and last_all[-1].lower() in ("all", "+all"):
        lines.append(Line(False, topic, f'"{record}" ends in +all: it authorises every '
                          "server in the world to send as us, so it proves nothing and "
                          "filters treat it as spam", f'replace "{last_all[-1]}" by "-all" '
                          "(or ~all while testing)"))
    elif last_all and last_all[-1].lower() == "?all":
        lines.append(Line(None, topic, f'"{record}" ends in ?all (neutral): other servers are '
                          "neither allowed nor refused", 'end the record in "-all" or "~all"'))
    if not relay_ips:
        lines.append(Line(None, topic, f'record "{record}"; which addresses it must allow is '
                          "unknown: set [domain_check] relay_addresses to the relay's outgoing "
                          "address(es)"))
        return lines
    bad = {ip: r for ip, r in evaluate.items() if r != "pass"}
    if bad:
        said = ", ".join(f"{ip} → {r}" for ip, r in bad.items())
        lines.append(Line(False, topic, f"the relay is not authorised by \"{record}\" ({said}): "
                          "receivers that check SPF refuse or junk our mail",
                          f"add {' '.join(('ip4:' if ':' not in ip else 'ip6:') + ip for ip in bad)} "
                          f"to the SPF record of {domain}"))
    elif not lines:
        lines.append(Line(True, topic, f'"{record}" authorises the relay ({", ".join(relay_ips)})'))
    return lines


# -- DKIM ------------------------------------------------------------------------------

def dkim_tags(txt: str) -> dict[str, str]:
    tags = {}
    for part in txt.split(";"):
        k, eq, v = part.partition("=")
        if eq:
            tags[k.strip().lower()] = "".join(v.split())
    return tags


def dkim_lines(domain: str, selector: str, txts: list[str], key_pem: bytes,
               record: str) -> list[Line]:
    name = f"{selector}._domainkey.{domain}"
    topic = f"DKIM {name}"
    keys = [dkim_tags(t) for t in txts if "p=" in t]
    if not keys:
        return [Line(False, topic, "no key is published for our selector: every signature "
                     "fails, and with DMARC the mail is refused",
                     f"publish `{record}` (printed by `omitama-notify dkim keygen`)")]
    p = keys[0].get("p", "")
    if not p:
        return [Line(False, topic, "the key is revoked (empty p=)", f"publish `{record}`")]
    if not same_public_key(p, key_pem):
        return [Line(False, topic, "the published key is not the public half of our "
                     "[dkim] key_file (a stale or another key): every signature fails",
                     f"replace the TXT record at {name} by `{record}`")]
    return [Line(True, topic, "the published key matches our [dkim] key_file")]


# -- DMARC -----------------------------------------------------------------------------

def dmarc_lines(from_domain: str, found: tuple[str, str] | None, dkim_domain: str | None,
                dkim_ok: bool, rp_domain: str, spf_ok: bool) -> list[Line]:
    """``found``: (where, record) of the DMARC record for From, if any."""
    topic = f"DMARC {from_domain}"
    if found is None:
        return [Line(None, topic, "no DMARC record: Gmail and Yahoo require one of bulk "
                     "senders, and we learn nothing of forgeries",
                     f'a TXT record at _dmarc.{from_domain}: "v=DMARC1; p=none; '
                     f'rua=mailto:postmaster@{from_domain}"')]
    where, record = found
    tags = dkim_tags(record)
    policy = tags.get("sp" if where != from_domain and "sp" in tags else "p", "none").lower()
    by_dkim = bool(dkim_domain) and dkim_ok and aligned(from_domain, dkim_domain or "",
                                                          tags.get("adkim") == "s")
    by_spf = spf_ok and aligned(from_domain, rp_domain, tags.get("aspf") == "s")
    how = [w for w, ok in (("DKIM d=" + (dkim_domain or ""), by_dkim),
                           ("the return path " + rp_domain, by_spf)) if ok]
    if how:
        return [Line(True, topic, f"p={policy} (at _dmarc.{where}); From aligns with {' and '.join(how)}")]
    why = []
    if not dkim_domain:
        why.append("the worker does not sign ([dkim] off: the relay must sign with d="
                   f"{from_domain})")
    elif not aligned(from_domain, dkim_domain, tags.get("adkim") == "s"):
        why.append(f"DKIM d={dkim_domain} is not {from_domain}")
    elif not dkim_ok:
        why.append("our DKIM key is not published correctly (see DKIM above)")
    if not aligned(from_domain, rp_domain, tags.get("aspf") == "s"):
        why.append(f"the return path {rp_domain} is not {from_domain}")
    elif not spf_ok:
        why.append(f"SPF of {rp_domain} does not pass for the relay (see SPF above)")
    said = f"p={policy} but From aligns with neither DKIM nor SPF: " + "; ".join(why)
    if policy in ("reject", "quarantine"):
        return [Line(False, topic, said + f" — receivers {'refuse' if policy == 'reject' else 'junk'} "
                     "every mail", f"sign with d={from_domain} (set [dkim] domain) and publish "
                     "its key, or authorise the relay in the SPF of an aligned return path")]
    return [Line(None, topic, said, "fix DKIM or SPF alignment before tightening p=")]


def find_dmarc(dnsq: Dns, from_domain: str) -> tuple[str, str] | None:
    """The DMARC record of From's domain, else of a parent domain (the organisational
    domain, approximated by walking up while two labels are left)."""
    labels = from_domain.split(".")
    for i in range(0, max(1, len(labels) - 1)):
        where = ".".join(labels[i:])
        recs = [t for t in dnsq.txt(f"_dmarc.{where}") if t.lower().startswith("v=dmarc1")]
        if recs:
            return where, recs[0]
    return None


# -- MX --------------------------------------------------------------------------------

def mx_lines(rp_domain: str, mxs: list[str]) -> list[Line]:
    topic = f"MX {rp_domain}"
    real = [m for m in mxs if m not in ("", ".")]
    if not real:
        return [Line(False, topic, "the return-path domain has no mail server (MX): bounce "
                     "reports cannot come back, so failures go unnoticed and receivers "
                     "may refuse a sender that cannot be answered",
                     f"an MX record for {rp_domain} pointing to the library's mail server")]
    return [Line(True, topic, f"bounces come back via {', '.join(sorted(real))}")]


# -- all of it -------------------------------------------------------------------------

def check_domain(s: Settings) -> list[Line]:
    c = s.domain_check
    dnsq = Dns(c.resolver, c.resolver_port, c.timeout_s)
    from_domain = domain_of(s.mail.from_address)
    rp_domain = domain_of(s.mail.return_path) if s.mail.return_path else from_domain
    lines: list[Line] = []
    spf_pass: dict[str, bool] = {}
    for domain in dict.fromkeys((from_domain, rp_domain)):
        txts = dnsq.txt(domain)
        results = {ip: _spf_result(dnsq, ip, domain, c.timeout_s)
                   for ip in c.relay_addresses} if spf_records(txts) else {}
        lines += spf_lines(domain, txts, list(c.relay_addresses), results)
        spf_pass[domain] = bool(results) and all(r == "pass" for r in results.values())
    dkim_ok = False
    if s.dkim_on:
        from .dkim import txt_record
        pem = read_private_key(s.path(Path(s.dkim.key_file)))
        name = f"{s.dkim.selector}._domainkey.{s.dkim.domain}"
        got = dkim_lines(s.dkim.domain, s.dkim.selector, dnsq.txt(name), pem,
                         txt_record(s.dkim.domain, s.dkim.selector, pem))
        dkim_ok = all(line.ok for line in got)
        lines += got
    else:
        lines.append(Line(None, "DKIM", "the worker does not sign ([dkim] key_file empty): "
                          "make sure the relay signs with d=" + from_domain))
    lines += dmarc_lines(from_domain, find_dmarc(dnsq, from_domain),
                         s.dkim.domain if s.dkim_on else None, dkim_ok, rp_domain,
                         spf_pass.get(rp_domain, False))
    lines += mx_lines(rp_domain, dnsq.mx(rp_domain))
    return lines


def _spf_result(dnsq: Dns, ip: str, domain: str, timeout: float) -> str:
    """pyspf's verdict for mail from ``postmaster@domain`` sent by ``ip``, its DNS
    look-ups made through our resolver (pyspf calls the module's DNSLookup)."""
    saved = spf.DNSLookup
    spf.DNSLookup = dnsq.spf_lookup
    try:
        result, _code, _why = spf.query(i=ip, s=f"postmaster@{domain}", h=domain,
                                        timeout=timeout).check()
        return str(result)
    finally:
        spf.DNSLookup = saved
