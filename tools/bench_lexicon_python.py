"""Python anchor of benches/lexicon.rs: the same caption analysis with pyarrow + re +
collections.Counter, single process, on the same Parquet corpus.

    python tools/bench_lexicon_python.py out/bench-captions/corpus.parquet [ROWS]

Per caption: lower-case, word tokens (regex), possessive split, term counts without stop
words, bigram and trigram counts, listed names (one regex alternation), 'photo of NAME' /
'NAME at' / "NAME's" patterns, gender/age/face word counts, dominant script (regex classes).
Prints captions per second (one timed run over the file; ROWS limits the rows read).
"""
import collections
import os
import re
import sys
import time

import pyarrow.parquet as pq

path = sys.argv[1]
limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
src = open(os.path.join(os.path.dirname(__file__), "..", "crates/face-data/src/captions/words.rs")).read()


def word_list(const):
    body = src.split(f"pub const {const}: &[&str] =", 1)[1].split("];", 1)[0]
    return re.findall(r'"([^"]+)"', body)


STOP = set(word_list("STOP_WORDS"))
ATTR = {w: c for c, const in (("gender", "GENDER_WORDS"), ("age", "AGE_WORDS"), ("face", "FACE_ATTRIBUTE_WORDS"))
        for w in word_list(const)}
DEPICT = set(word_list("DEPICTION_WORDS"))
EVENT = set(word_list("EVENT_WORDS"))
names_file = os.path.join(os.path.dirname(__file__), "..", "crates/face-data/tests/fixtures/captions/names.txt")
NAMES = sorted({l.strip().lower() for l in open(names_file) if l.strip() and not l.startswith("#")}, key=len, reverse=True)
NAME_RE = re.compile(r"\b(" + "|".join(re.escape(n) for n in NAMES) + r")('s)?\b")
TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
SCRIPTS = [("Latin", re.compile(r"[A-Za-z\u00c0-\u024f]")), ("Cyrillic", re.compile(r"[\u0400-\u04ff]")),
           ("Arabic", re.compile(r"[\u0600-\u06ff]")), ("Han", re.compile(r"[\u4e00-\u9fff]"))]

t0 = time.perf_counter()
table = pq.read_table(path, columns=["caption"])
captions = table.column("caption").to_pylist()
if limit:
    captions = captions[:limit]
terms, bigrams, trigrams, names, scripts = (collections.Counter() for _ in range(5))
attr = collections.Counter()
pats = collections.Counter()
for c in captions:
    if not c or not c.strip():
        continue
    low = c.lower()
    toks = [t[:-2] if t.endswith("'s") and len(t) > 2 else t for t in TOKEN.findall(low)]
    terms.update(t for t in toks if t not in STOP)
    bigrams.update(" ".join(toks[i:i + 2]) for i in range(len(toks) - 1))
    trigrams.update(" ".join(toks[i:i + 3]) for i in range(len(toks) - 2))
    attr.update(ATTR[t] for t in toks if t in ATTR)
    found = set()
    for m in NAME_RE.finditer(low):
        found.add(m.group(1))
        before = low[:m.start()].split()
        after = low[m.end():].split()
        if len(before) >= 2 and before[-1] == "of" and before[-2] in DEPICT:
            pats["depiction"] += 1
        if after and after[0].strip(",.") in EVENT:
            pats["event"] += 1
        if m.group(2):
            pats["possessive"] += 1
    names.update(found)
    for s, rx in SCRIPTS:
        if rx.search(c):
            scripts[s] += 1
            break
elapsed = time.perf_counter() - t0
print(f"{len(captions)} captions in {elapsed:.1f} s: {len(captions) / elapsed:,.0f} captions/s (Python {sys.version.split()[0]})")
print("top terms:", terms.most_common(5))
print("names:", names.most_common(3), "patterns:", dict(pats))
