"""Writes the caption-corpus fixture of face-data's lexicon tests: 2,000 captions written for
the tests from templates (none copied from LAION), with invented person names, in CSV, JSONL
and Parquet, plus the counts the Rust analysis must reproduce exactly.

    python tools/make_caption_fixture.py crates/face-data/tests/fixtures/captions

The expected counts are computed here independently of the Rust code: tokens by a regular
expression that equals Unicode word segmentation on the vocabulary used (ASCII words with
apostrophes, space-separated Cyrillic and Arabic words, Han characters one word each), the word
lists read from crates/face-data/src/captions/words.rs, names and patterns known by
construction. Also used (with --rows N --out FILE.parquet) to generate the bench corpus.
"""
import argparse
import collections
import json
import os
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--rows", type=int, default=2000)
ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--bench", action="store_true", help="write only OUT as one parquet file, no bad rows")
args = ap.parse_args()
rng = random.Random(args.seed)

src = open(os.path.join(os.path.dirname(__file__), "..", "crates/face-data/src/captions/words.rs")).read()


def word_list(const):
    body = src.split(f"pub const {const}: &[&str] =", 1)[1].split("];", 1)[0]
    return re.findall(r'"([^"]+)"', body)


STOP = set(word_list("STOP_WORDS"))
CATS = {"gender": word_list("GENDER_WORDS"), "age": word_list("AGE_WORDS"), "face_attribute": word_list("FACE_ATTRIBUTE_WORDS")}

NAMES = ["Maria Lindqvist", "Tomasz Brenner", "Aiko Hanamura", "Daniel Okafor", "Lucia Ferrante", "Priya Raman",
         "Jonas Whitfield", "Sofia Marchetti", "Kwame Mensah", "Elena Vasquez", "Oskar Dahl", "Mei Lin"]
# Zipf-like popularity, as names are in web captions.
WEIGHTS = [1.0 / (i + 1) for i in range(len(NAMES))]
PLACES = ["premiere", "gala", "festival", "awards ceremony", "conference", "match", "launch party"]
CITIES = ["london", "paris", "toronto", "madrid", "berlin", "sydney", "seoul"]
PEOPLE = ["man", "woman", "young girl", "old man", "smiling woman", "bearded man", "little boy", "elderly lady",
          "teenager", "baby", "businessman", "senior woman"]
THINGS = ["with glasses", "wearing a hat", "with curly hair", "in a red dress", "with a beard", "in sunglasses",
          "with blonde hair", "holding a coffee", "on a white background", "near the window"]
GENERIC = ["close up portrait of a {p} {t}", "{p} {t} smiling at the camera", "stock photo of a {p} {t}",
           "headshot of a {p} {t}", "a {p} {t} in the park", "portrait of a happy {p}", "{p} looking away {t}"]
CYRILLIC = ["портрет молодой женщины", "мужчина в очках улыбается", "фото девушки на улице"]
ARABIC = ["صورة رجل مبتسم", "امرأة ترتدي نظارات"]
HAN = ["微笑的女人肖像", "戴眼镜的男人"]


def caption(i):
    """Returns (caption, names in it, patterns) with patterns a Counter of kinds."""
    r = rng.random()
    pats = collections.Counter()
    if r < 0.30:
        name = rng.choices(NAMES, WEIGHTS)[0]
        kind = rng.randrange(4)
        if kind == 0:
            c = f"a photo of {name} at the {rng.choice(PLACES)} in {rng.choice(CITIES)}"
            pats.update(["depiction", "event"])
        elif kind == 1:
            c = f"{name} attends the {rng.choice(PLACES)}, {rng.choice(CITIES)} 2019"
            pats.update(["event"])
        elif kind == 2:
            c = f"{name}'s new look {rng.choice(THINGS)}"
            pats.update(["possessive"])
        else:
            other = rng.choices(NAMES, WEIGHTS)[0]
            if other == name:
                c = f"{name} with fans"
                return c, [name], pats
            c = f"{name} and {other} pose for photographers"
            return c, [name, other], pats
        return c, [name], pats
    if r < 0.93:
        return rng.choice(GENERIC).format(p=rng.choice(PEOPLE), t=rng.choice(THINGS)), [], pats
    if r < 0.96:
        return rng.choice(CYRILLIC), [], pats
    if r < 0.98:
        return rng.choice(ARABIC), [], pats
    return rng.choice(HAN), [], pats


def tokens(c):
    out = []
    for w in re.findall(r"[^\W_]+(?:'[^\W_]+)*", c.lower()):
        if all("\u4e00" <= ch <= "\u9fff" for ch in w):
            out.extend(w)  # each Han character is a word
            continue
        if w.endswith("'s") and len(w) > 2:
            w = w[:-2]
        out.append(w)
    return out


def script(c):
    if re.search(r"[a-zA-Z]", c):
        return "Latin"
    if re.search(r"[\u0400-\u04ff]", c):
        return "Cyrillic"
    if re.search(r"[\u0600-\u06ff]", c):
        return "Arabic"
    if re.search(r"[\u4e00-\u9fff]", c):
        return "Han"
    return "None"


if args.bench:
    caps = [caption(i)[0] for i in range(args.rows)]
    pq.write_table(pa.table({"caption": caps, "url": [f"https://example.invalid/{i}.jpg" for i in range(args.rows)]}),
                   args.out, compression="snappy", row_group_size=1 << 20)
    print("wrote", args.out, args.rows)
    raise SystemExit

os.makedirs(args.out, exist_ok=True)
rows = [caption(i) for i in range(args.rows)]
good = [c for c, _, _ in rows]

terms, bigrams, names, scripts = collections.Counter(), collections.Counter(), collections.Counter(), collections.Counter()
pats = collections.Counter()
cat_caps, cat_occ = collections.Counter(), collections.Counter()
n_tokens = 0
captions_with_pattern = 0
for c, ns, p in rows:
    toks = tokens(c)
    n_tokens += len(toks)
    terms.update(t for t in toks if t not in STOP)
    bigrams.update(" ".join(toks[i:i + 2]) for i in range(len(toks) - 1))
    names.update(set(ns))
    pats.update(p)
    captions_with_pattern += bool(p)
    scripts[script(c)] += 1
    for cat, ws in CATS.items():
        occ = sum(t in ws for t in toks)
        cat_occ[cat] += occ
        cat_caps[cat] += occ > 0


def top(counter, k):
    return [[t, n] for t, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


expected = {
    "captions": len(good),
    "tokens": n_tokens,
    "distinct_terms": len(terms),
    "top_terms": top(terms, 25),
    "top_bigrams": top(bigrams, 15),
    "captions_with_name": sum(1 for _, ns, _ in rows if ns),
    "names": dict(names),
    "depiction_of_name": pats["depiction"],
    "name_at_event": pats["event"],
    "name_possessive": pats["possessive"],
    "captions_with_pattern": captions_with_pattern,
    "attribute_captions": dict(cat_caps),
    "attribute_occurrences": dict(cat_occ),
    "scripts": dict(scripts),
}

# Bad rows, inserted at fixed places, differ by format.
with open(os.path.join(args.out, "names.txt"), "w") as f:
    f.write("# invented names, one per line\n" + "\n".join(NAMES) + "\nmaria lindqvist\n")
with open(os.path.join(args.out, "captions.csv"), "wb") as f:
    f.write(b"url,caption,width\n")
    for i, c in enumerate(good):
        q = '"' + c.replace('"', '""') + '"'
        f.write(f"https://example.invalid/{i}.jpg,{q},512\n".encode())
        if i == 10:
            f.write(b"https://example.invalid/short.jpg\n")                    # missing column
        if i == 20:
            f.write(b"https://example.invalid/bad.jpg,\"caf\xe9 latte\",512\n")  # Latin-1, not UTF-8
        if i == 30:
            f.write(b"https://example.invalid/empty.jpg,\"   \",512\n")          # empty
with open(os.path.join(args.out, "captions.jsonl"), "wb") as f:
    for i, c in enumerate(good):
        f.write((json.dumps({"url": f"https://example.invalid/{i}.jpg", "caption": c}, ensure_ascii=False) + "\n").encode())
        if i == 5:
            f.write(b'{"url": "x", "caption": null}\n')
        if i == 6:
            f.write(b'{"url": "x", "text": "wrong key"}\n')
        if i == 7:
            f.write(b'{"url": "x", "caption": "unterminated\n')
        if i == 8:
            f.write(b'{"url": "x", "caption": "\xff\xfe"}\n')
        if i == 9:
            f.write(b'{"url": "x", "caption": 42}\n')
        if i == 11:
            f.write(b'{"url": "x", "caption": ""}\n')
caps = list(good)
caps.insert(3, None)
caps.insert(4, "")
pq.write_table(pa.table({"url": [f"u{i}" for i in range(len(caps))], "caption": caps}),
               os.path.join(args.out, "captions.parquet"), compression="snappy", row_group_size=700)
expected["bad_rows"] = {
    "csv": {"missing_column": 1, "invalid_utf8": 1, "empty": 1, "null": 0, "malformed": 0},
    "jsonl": {"missing_column": 1, "invalid_utf8": 1, "empty": 1, "null": 1, "malformed": 2},
    "parquet": {"missing_column": 0, "invalid_utf8": 0, "empty": 1, "null": 1, "malformed": 0},
}
json.dump(expected, open(os.path.join(args.out, "expected.json"), "w"), indent=1, ensure_ascii=False)
print("wrote", args.out, len(good), "captions")
