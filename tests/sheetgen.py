"""Makes believable GGmetadata_and_timestamps sheets: the real 35 columns, messy titles, every rejection case.

    python tests/sheetgen.py example  > reversesync/examples/example_sheet.csv   # the bundled example
    python tests/sheetgen.py 100000   > big.csv                                  # benchmark sizes
"""

import csv
import random
import sys
import uuid

COLUMNS = [
    "id", "title", "time_start_ms", "time_end_ms", "time_start_S", "time_end_S", "Description", "ProjectName",
    "ProjectNameTag", "SearchTag", "Year_", "Location", "Venue", "EpisodeEvent", "Source", "Scene", "GameType",
    "PlayersTags", "HandGrade", "HANDTag", "EPICHAND", "Tournament", "PokerPlayTags", "Adjective", "Emotion",
    "AppearanceOutfit", "SceneryObject", "_gcvi_tags", "Badbeat", "Bluff", "Suckout", "Cooler", "RUNOUTTag",
    "PostFlop", "All-in",
]

PLAYERS = ["Phil Ivey", "Daniel Negreanu", "Phil Hellmuth", "Tom Dwan", "Doyle Brunson", "Vanessa Selbst",
           "Fedor Holz", "Justin Bonomo", "Jason Koon", "Maria Ho"]
EVENTS = ["WSOP Main Event", "High Stakes Poker", "Poker After Dark", "Super High Roller Bowl", "EPT Barcelona"]
TITLES = [
    "{p} hero call on the river",
    "{p} 4-bet bluff, \"all in\" for the bracelet",
    "{e} 2024 메인 이벤트 — 파이널 테이블",
    "{p}의 블러프, 결승 테이블",
    "Day 3, table 7: {p} vs {q}",
    "{p} flops a set\n(second camera angle)",
    "=HYPERLINK(\"http://example.com\",\"{p}\")",
    "+1 big blind bluff by {p}",
    "-{p} folds kings preflop",
    "@{p} cooler of the year",
]
WORDS = ["bluff", "cooler", "suckout", "river", "turn", "quads", "aces", "bad beat", "hero call", "slowroll"]


def _row(rng, asset_id, start, end, title=None):
    p, q = rng.sample(PLAYERS, 2)
    row = {c: "" for c in COLUMNS}
    row.update({
        "id": asset_id,
        "title": title if title is not None else rng.choice(TITLES).format(p=p, q=q, e=rng.choice(EVENTS)),
        "time_start_ms": start, "time_end_ms": end,
        "time_start_S": "" if start == "" else f"{int(start) / 1000:.3f}" if str(start).isdigit() else "",
        "time_end_S": "" if end == "" else f"{int(end) / 1000:.3f}" if str(end).isdigit() else "",
        "Description": f"{p} and {q}, {rng.choice(WORDS)}, {rng.choice(WORDS)}",
        "ProjectName": rng.choice(EVENTS), "ProjectNameTag": "GG", "SearchTag": rng.choice(WORDS),
        "Year_": str(rng.randint(2003, 2025)), "Location": rng.choice(["Las Vegas", "Seoul", "Barcelona"]),
        "Venue": rng.choice(["Horseshoe", "Paris", "Aria"]), "EpisodeEvent": f"Episode {rng.randint(1, 40)}",
        "Source": "PGM", "Scene": rng.choice(["table", "interview"]), "GameType": rng.choice(["NLHE", "PLO"]),
        "PlayersTags": f"{p}, {q}", "HandGrade": rng.choice(["A", "B", "C"]), "HANDTag": rng.choice(WORDS),
        "EPICHAND": rng.choice(["TRUE", "FALSE"]), "Tournament": rng.choice(EVENTS),
        "PokerPlayTags": rng.choice(WORDS), "Adjective": "epic", "Emotion": rng.choice(["tense", "joy"]),
        "AppearanceOutfit": "hoodie", "SceneryObject": "chips", "_gcvi_tags": "poker;cards",
        "Badbeat": rng.choice(["", "TRUE"]), "Bluff": rng.choice(["", "TRUE"]), "Suckout": "",
        "Cooler": "", "RUNOUTTag": "", "PostFlop": "TRUE", "All-in": rng.choice(["", "TRUE"]),
    })
    return row


def _times(rng):
    start = rng.randint(0, 3_600_000)
    return start, start + rng.randint(5_000, 600_000)


def _new_id(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def valid_rows(rng, count):
    rows = []
    for _ in range(count):
        start, end = _times(rng)
        rows.append(_row(rng, _new_id(rng), start, end))
    return rows


def example_rows(seed=2450):
    """About 300 rows: mostly good ones, and every rejection and number format the loader must handle."""
    rng = random.Random(seed)
    rows = valid_rows(rng, 262)
    # Numbers as people and spreadsheets write them: thousands separators, spaces, a trailing .0.
    rows[3]["time_start_ms"], rows[3]["time_end_ms"] = "1,234,567", "1,299,000"
    rows[3]["time_start_S"], rows[3]["time_end_S"] = "1234.567", "1299"
    rows[4]["time_start_ms"] = f" {rows[4]['time_start_ms']} "
    rows[5]["time_end_ms"] = f"{rows[5]['time_end_ms']}.0"
    rows[6]["id"] = rows[6]["id"].upper()
    # The same asset twice with the same times is one asset; with different times, a conflict.
    rows += [dict(rows[10]), dict(rows[11]), dict(rows[12], title="same clip, other title")]
    clash = dict(rows[13])
    clash["time_end_ms"] = int(clash["time_end_ms"]) + 5_000
    clash["time_end_S"] = f"{clash['time_end_ms'] / 1000:.3f}"
    rows.append(clash)
    bad_ids = ["../x", "3f2a9c1e-0000-4000-8000-000000000000/../../admin", "a b c", "", "not-a-uuid",
               "1b4e28ba-2fa1-11d2-883f-0016d3cca427?x=1", "%2e%2e%2f", "1b4e28ba-2fa1-11d2-883f-0016d3cca42"]
    for bad in bad_ids:
        start, end = _times(rng)
        rows.append(_row(rng, bad, start, end))
    bad_times = [("1234.5", "9000"), ("abc", "9000"), ("-5", "9000"), ("9000", "9000"), ("9000", "5000"),
                 ("9000", ""), ("", "9000"), ("TRUE", "9000")]
    for start, end in bad_times:
        rows.append(_row(rng, _new_id(rng), start, end))
    mismatch = _row(rng, _new_id(rng), 10_000, 20_000)
    mismatch["time_end_S"] = "25.000"
    rows.append(mismatch)
    for _ in range(6):
        rows.append(_row(rng, _new_id(rng), "", ""))
    # An entirely blank row, as exports often end with: ignored, not rejected.
    rows.append({c: "" for c in COLUMNS})
    tail = rows[262:-1]
    head = rows[:262]
    rng.shuffle(tail)
    mixed = head[:]
    for item in tail:
        mixed.insert(rng.randint(0, len(mixed)), item)
    return mixed + [rows[-1]]


def write(rows, handle):
    writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def write_export(path, rows, encoding="utf-8", delimiter=",", header=COLUMNS):
    """An export of the sheet as Excel saves it: rows are {column: value} (other columns empty), written in
    encoding ("cp949" for Korean Excel's CSV; "utf-16" with TABs for its Unicode Text, BOM included), with
    Excel's CRLF line ends."""
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, delimiter=delimiter, restval="", lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def main(argv):
    which = argv[1] if len(argv) > 1 else "example"
    rows = example_rows() if which == "example" else valid_rows(random.Random(int(which)), int(which))
    write(rows, sys.stdout)


if __name__ == "__main__":
    main(sys.argv)
