"""The sources the scenario cites: one table, keyed as ``shared/domain/sources.md`` keys them.

Keys S<n> follow sources.md; the others are the instruments or official statements
themselves (cited by title and date) and a few official pages found while verifying the
timeline.  ``cite(key)`` copies an entry (optionally with a note), ``instrument(...)``
cites an instrument by title and date, ``illustrative(note)`` marks made-up data.

A status says what the source is: ``official`` only for the issuing government's own
text or statement (the instruments, and MOFCOM's own pages); ``reported`` for everything
published by others, news of an official act and third-party English texts of an
instrument included; ``claim`` for a report that something will happen or was said
privately; ``illustrative`` for data made up for the scenario.
"""

from __future__ import annotations

from typing import Any

Src = dict[str, Any]


def _source(
    reference: str, publisher: str, published_on: str | None, status: str, note: str = ""
) -> Src:
    out: Src = {"reference": reference, "publisher": publisher}
    if published_on is not None:
        out["published_on"] = published_on
    out["status"] = status
    if note:
        out["note"] = note
    return out


SOURCES: dict[str, Src] = {
    # sources.md: third-party pages (news, law firms, translations): reported
    "S2": _source(
        "https://www.lexiscn.com/law/law-english-1-3877231-T.html",
        "LexisNexis China (English text of the law)",
        None,
        "reported",
    ),
    "S3": _source(
        "https://www.csrcare.com/Law/LawShowEn?id=233583",
        "CSRcare (English text of the Regulations)",
        None,
        "reported",
    ),
    "S9": _source(
        "https://www.china-briefing.com/news/china-issues-new-export-control-regulations",
        "China Briefing",
        None,
        "reported",
    ),
    "S10": _source(
        "https://www.chinajusticeobserver.com/a/china-imposes-export-controls-on-gallium-and-germanium",
        "China Justice Observer",
        None,
        "reported",
    ),
    "S11": _source(
        "https://english.news.cn/20231020/b218269f9f9e4c708aae37c0ad3d4fe1/c.html",
        "Xinhua",
        "2023-10-20",
        "reported",
    ),
    "S12": _source(
        "https://www.nasdaq.com/articles/china-bans-export-of-rare-earths-processing-technologies",
        "Reuters via Nasdaq",
        "2023-12-21",
        "reported",
    ),
    "S13": _source(
        "um-material.com (text of MOFCOM/GAC Announcement No. 33 of 2024); "
        "analitycdc.com (Reuters: effective 2024-09-15)",
        "UM Material; Reuters",
        "2024-08-15",
        "reported",
    ),
    "S14": _source(
        "https://cryptogon.com/?p=71535",
        "Reuters via Cryptogon",
        "2024-12-03",
        "reported",
    ),
    "S14b": _source(
        "https://www.pakistantoday.com.pk/2025/11/09/china-suspends-part-of-control-measures-on-dual-use-items-export-to-us/",
        "Pakistan Today (Xinhua)",
        "2025-11-09",
        "reported",
    ),
    "S15": _source(
        "hklaw.com/…/2025/04/china-imposes-export-controls-on-medium-and-heavy-rare-earth-materials",
        "Holland & Knight",
        None,
        "reported",
        "April 2025; reference truncated in sources.md",
    ),
    "S16": _source(
        "https://osencmagnet.com/export-controls-on-rare-earth-elements/",
        "Osenc Magnet (English translation of Announcement No. 18)",
        None,
        "reported",
    ),
    "S17": _source(
        "https://en.portnews.ru/news/376823/",
        "PortNews",
        None,
        "reported",
        "report of the Geneva joint statement (May 2025)",
    ),
    "S18": _source(
        "https://legalmorningcoffee.com/trump-signs-executive-order-extending-suspension-of-reciprocal-tariffs-with-china-until-november",
        "Legal Morning Coffee",
        None,
        "reported",
        "August 2025",
    ),
    "S18b": _source(
        "lexiscn.com (State Council Tariff Commission announcement of 2025-08-12)",
        "LexisNexis China",
        "2025-08-12",
        "reported",
    ),
    "S19": _source(
        "https://www.thompsonhinesmartrade.com/2025/11/white-house-announces-one-year-suspension-of-the-bis-affiliates-rule/",
        "Thompson Hine SmarTrade",
        None,
        "reported",
        "November 2025",
    ),
    "S20": _source(
        "https://www.chemradar.com/en/news/detail/f1la2toi5p1c",
        "ChemRadar",
        None,
        "reported",
        "October 2025",
    ),
    "S20-61": _source(
        "http://www.sscollege.cn/en/news/44800.html",
        "SSCollege (English text of MOFCOM Announcement No. 61 of 2025)",
        "2025-10-09",
        "reported",
    ),
    "S20-62": _source(
        "http://www.sscollege.cn/en/news/44809.html",
        "SSCollege (English text of MOFCOM Announcement No. 62 of 2025)",
        "2025-10-09",
        "reported",
    ),
    "S20-people": _source(
        "https://en.people.cn/n3/2025/1010/c90000-20374885.html",
        "People's Daily Online",
        "2025-10-10",
        "reported",
    ),
    "S21": _source(
        "https://www.freightwaves.com/news/us-suspends-port-fees-on-chinese-ships",
        "FreightWaves",
        "2025-11-10",
        "reported",
    ),
    "S22": _source(
        "https://www.dawn.com/news/1952144",
        "Dawn",
        None,
        "reported",
        "report of the Busan meeting (October 2025)",
    ),
    "S23": _source(
        "https://carmnet.com/?p=3284",
        "CARMNET (on the White House fact sheet of 2025-11-01)",
        None,
        "reported",
        "on the White House fact sheet (November 2025)",
    ),
    "S24": _source(
        "mondaq.com/…/1702762/united-states-begins-implementing-us-china-trade-arrangement-…",
        "Mondaq",
        None,
        "reported",
        "November 2025; reference truncated in sources.md",
    ),
    "S25": _source(
        "https://www.sinobtd.com/news/8935.html",
        "SinoBTD (State Council Tariff Commission announcements of 2025-11-05)",
        None,
        "reported",
        "November 2025",
    ),
    "S26": _source(
        "https://www.chemradar.com/en/news/detail/f3s7t2oy9qf4",
        "ChemRadar",
        None,
        "reported",
        "November 2025",
    ),
    "S26b": _source(
        "https://rawmaterials.net/china-officially-suspends-october-export-tightening",
        "RawMaterials.net",
        None,
        "reported",
        "November 2025",
    ),
    "S27": _source(
        "https://www.businesstimes.com.sg/international/china-suspends-ban-exports-gallium-germanium-antimony-us",
        "The Business Times (Reuters)",
        "2025-11-09",
        "reported",
    ),
    "S29": _source(
        "https://www.tomshardware.com/tech-industry/china-issues-first-batch-of-general-rare-earth-export-licenses-to-magnet-makers",
        "Tom's Hardware (Reuters report)",
        "2025-12-02",
        "reported",
        "Reuters: JL Mag, Ningbo Yunsheng and Zhong Ke San Huan received one-year, "
        "customer-specific general licences; JL Mag for nearly all customers, the others "
        "for some (dated 2025-12-02 by the timeline)",
    ),
    "S29b": _source(
        "https://www.trtworld.com/article/b8d356291765",
        "TRT World (MOFCOM press briefing)",
        "2025-12-04",
        "reported",
        "MOFCOM spokesperson: compliant civilian rare-earth export applications are "
        "approved; general licences introduced to facilitate compliant trade",
    ),
    "S36": _source(
        "duramag.com/techtalk/magnet-news/general-hree-export-licenses-…",
        "Duramag",
        None,
        "reported",
        "December 2025; reference truncated in sources.md",
    ),
    "S37": _source(
        "https://eurasiabusinessnews.com/2025/08/11/trump-extends-china-deadline-says-no-gold-tariff",
        "Eurasia Business News",
        "2025-08-11",
        "reported",
    ),
    # the reports of shared/domain/sources.md (R1, R2): news, never official
    "R1": _source(
        "Understanding the Current Diplomatic Impasse in China-US Rare Earth Deal Negotiations",
        "Discovery Alert",
        "2025-11-14",
        "reported",
        "investor news site: the general-licence terms were to be finalised by the end of "
        "November 2025 and were still unimplemented on 2025-11-14",
    ),
    "R2": _source(
        "Still No Deal: Rare Earth Talks Between China And U.S. Drag On With Little "
        "Tangible Progress So Far",
        "ZeroHedge (relaying Bloomberg)",
        "2025-11-17",
        "reported",
        "2025-11-17 13:40 US Eastern, relaying a Bloomberg report of the same day: "
        "negotiators have until the end of November to finalise the general-licence terms; "
        "exporters have no new guidance",
    ),
    # claims: reports that something will happen or was said privately
    "S28": _source(
        "https://samarium.dev/news/china-considers-validated-end-user-controls-on-rare-earths",
        "Samarium.dev (relaying The Wall Street Journal)",
        "2025-11-11",
        "claim",
        "WSJ, 2025-11-11 (per the timeline): China is weighing a validated end-user regime "
        "for rare-earth exports that would exclude US defence-linked buyers",
    ),
    "S28-wion": _source(
        "wionews.com (the 1 December claim)",
        "WION",
        None,
        "claim",
        "reference truncated in sources.md: military-related applications rejected "
        "automatically from 2025-12-01",
    ),
    # pages found while verifying the timeline (not in sources.md); MOFCOM's own are
    # official, a state news agency's report of a ministry's notice is not
    "MOFCOM-1030": _source(
        "https://english.mofcom.gov.cn/News/SpokesmansRemarks/art/2025/"
        "art_d3b018b922a4458989e43a46a04be6fe.html",
        "MOFCOM spokesperson (Kuala Lumpur consultations / Busan meeting)",
        "2025-10-30",
        "official",
    ),
    "MOT-1110": _source(
        "https://en.people.cn/n3/2025/1110/c90000-20388634.html",
        "Xinhua via People's Daily Online (Ministry of Transport announcement)",
        "2025-11-10",
        "reported",
    ),
    "MOFCOM-55": _source(
        "http://www.mofcom.gov.cn/zwgk/zcfb/art/2025/art_949f47563b834dad95b0010f375a892c.html",
        "MOFCOM",
        "2025-10-09",
        "official",
    ),
}

ILLUSTRATIVE = _source(
    "illustrative (made up for the scenario)",
    "ledger scenario",
    None,
    "illustrative",
)


def cite(key: str, note: str = "") -> Src:
    source = dict(SOURCES[key])
    if note:
        source["note"] = note
    return source


def instrument(reference: str, publisher: str, published_on: str | None, note: str = "") -> Src:
    """The instrument or official statement itself, cited by title and date."""
    return _source(reference, publisher, published_on, "official", note)


def illustrative(note: str) -> Src:
    return {**ILLUSTRATIVE, "note": note}


def as_claim(source: Src, note: str = "") -> Src:
    """The same publication cited for a claim it reports (status ``claim``)."""
    out = {**source, "status": "claim"}
    if note:
        out["note"] = note
    return out
