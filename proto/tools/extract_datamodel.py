#!/usr/bin/env python3
"""Extracts the XenAPI datamodel from the seed's API reference (text of a PDF).

Usage: extract_datamodel.py SEED_TXT OVERRIDES_JSON OUT_JSON

The text lost the underscores of wire names ("name/label", "power state") and wrapped or
truncated some lines. Wire names are recovered from the RPC signatures, which keep them:
every field has a getter `get_<field>`, so a field-table row is matched to the getter whose
name and return type it starts with. What the text garbles beyond repair is corrected by the
overrides file, so each correction is visible. The output is deterministic: re-running the
extractor reproduces the committed datamodel byte for byte.

Types in the output are compact strings: string, int, float, bool, datetime, void, ref(CLASS),
record(CLASS), enum(NAME), set(T), map(K,V); e.g. map(ref(VDI),ref(SR)).
"""
import json
import re
import sys

PRIMITIVES = {"string", "int", "float", "bool", "datetime", "void"}
QUALIFIERS = {"ROrun": "RO_runtime", "RO ins": "RO_constructor", "RW": "RW"}
PAGE_NOISE = [
    re.compile(r"^\s*\d+\s*$"),                               # page numbers
    re.compile(r"^\s*[\d.]+ .*CHAPTER \d+\. [A-Z ]+$"),       # running headers
]


def fail(msg):
    sys.exit(f"extract_datamodel: {msg}")


def clean_lines(text):
    out = []
    for line in text.split("\n"):
        line = line.rstrip()
        if any(p.match(line) for p in PAGE_NOISE):
            continue
        out.append(line.strip())
    return out


def join_text(lines):
    """Joins wrapped lines of prose, undoing end-of-line hyphenation."""
    text = ""
    for line in lines:
        if not line:
            continue
        if text.endswith("-") and line[:1].islower() and not text.endswith(" -"):
            text = text[:-1] + line
        elif text:
            text += " " + line
        else:
            text = line
    return text


def words_key(s):
    """The comparison key of a name whose underscores became spaces or slashes."""
    return " ".join(re.split(r"[\s_/]+", s.strip()))


# ---------------------------------------------------------------- signature types

def tokenize(s):
    return re.findall(r"->|→|[()]|,|[^\s(),]+", s)


class TypeParser:
    """Parses the signature spelling of a type: `(VM ref -> (string -> string) Map) Map`."""

    def __init__(self, tokens):
        self.t = tokens
        self.i = 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def parse(self):
        if self.peek() == "(":
            self.take()
            first = self.parse()
            if self.peek() in ("->", "→"):
                self.take()
                second = self.parse()
                if self.take() != ")":
                    raise ValueError("expected ) after map")
                if self.take() != "Map":
                    raise ValueError("expected Map")
                ty = ["map", first, second]
            else:
                if self.take() != ")":
                    raise ValueError("expected )")
                ty = first
        else:
            word = self.take()
            if word is None:
                raise ValueError("type expected")
            if word == "session_id":
                ty = ["ref", "session"]
            elif self.peek() == "ref":
                self.take()
                ty = ["ref", word]
            elif self.peek() == "record":
                self.take()
                ty = ["record", word]
            elif word in PRIMITIVES:
                ty = word
            else:
                ty = ["enum", word]
        while self.peek() == "Set":
            self.take()
            ty = ["set", ty]
        return ty


def parse_type(s):
    p = TypeParser(tokenize(s))
    ty = p.parse()
    if p.peek() is not None:
        raise ValueError(f"trailing text in type {s!r}")
    return ty


def split_top(s, sep=","):
    depth, cur, parts = 0, "", []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_signature(sig):
    """`(VM ref) clone (session_id s, VM ref vm, string new_name)` -> (result, name, params, session)."""
    m = re.match(r"^(.*?)\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$", sig)
    if not m:
        raise ValueError(f"unparsable signature {sig!r}")
    result_text, name, params_text = m.groups()
    result = parse_type(result_text)
    params, session = [], False
    for p in split_top(params_text):
        ptype, pname = p.rsplit(None, 1)
        if ptype == "session_id" and not params and not session:
            session = True
            continue
        params.append({"type": parse_type(ptype), "name": pname})
    return result, name, params, session


# ---------------------------------------------------------------- table types

class TableTypes:
    """Parses the table spelling of a type, `(string → vm operations) Map`, `VM guest metrics ref`,
    over tokens; yields every reading so the caller can pick the longest."""

    def __init__(self, class_names, enum_names):
        self.classes = sorted(((words_key(c).split(), c) for c in class_names), key=lambda x: -len(x[0]))
        self.enums = sorted(((words_key(e).split(), e) for e in enum_names), key=lambda x: -len(x[0]))

    def atom(self, t, i):
        if i >= len(t):
            return
        if t[i] == "(":
            for left, j in self.full(t, i + 1):
                if j < len(t) and t[j] in ("→", "->"):
                    for right, k in self.full(t, j + 1):
                        if t[k:k + 2] == [")", "Map"]:
                            yield ["map", left, right], k + 2
                elif j < len(t) and t[j] == ")":
                    yield left, j + 1
            return
        for words, name in self.classes:
            n = len(words)
            if t[i:i + n] == words and i + n < len(t) and t[i + n] in ("ref", "record"):
                yield ["ref" if t[i + n] == "ref" else "record", name], i + n + 1
        for words, name in self.enums:
            if t[i:i + len(words)] == words:
                yield ["enum", name], i + len(words)
        if t[i] in PRIMITIVES:
            yield t[i], i + 1

    def full(self, t, i):
        for ty, j in self.atom(t, i):
            yield ty, j
            while j < len(t) and t[j] == "Set":
                ty, j = ["set", ty], j + 1
                yield ty, j


# ---------------------------------------------------------------- sections

def find_sections(lines):
    """Returns [(kind, title, start, end)] for classes and the errors section."""
    heads = []
    for i, line in enumerate(lines):
        m = re.match(r"^2\.(\d+) Class: (.+)$", line)
        if m:
            heads.append(("class", m.group(2), i))
        elif re.match(r"^2\.\d+ Error Handling$", line):
            heads.append(("errors", "", i))
    out = []
    for n, (kind, title, start) in enumerate(heads):
        end = heads[n + 1][2] if n + 1 < len(heads) else len(lines)
        out.append((kind, title, start, end))
    return out


def index_of(lines, pred, start, end):
    for i in range(start, end):
        if pred(lines[i]):
            return i
    return None


def parse_enums(lines, overrides):
    start = lines.index("2.3.3 Enumeration types")
    end = index_of(lines, lambda l: re.match(r"^2\.4 Class:", l), start, len(lines))
    enums, cur = [], None
    for line in lines[start + 1:end]:
        if not line or line.startswith("The following enumeration"):
            continue
        m = re.match(r"^enum (.+)$", line)
        if m:
            cur = {"name": m.group(1).replace(" ", "_"), "rows": []}
            enums.append(cur)
            continue
        if cur is not None:
            cur["rows"].append(line)
    explicit = overrides.get("enum_values", {})
    out = []
    for e in enums:
        values = []
        given = explicit.get(e["name"])
        rows = e["rows"]
        if given is not None:
            if len(given) != len(rows):
                fail(f"enum {e['name']}: override lists {len(given)} values, text has {len(rows)} rows")
            for v, row in zip(given, rows):
                w = row.split()
                n = len(v.replace("_", " ").split())
                if words_key(" ".join(w[:n])) != words_key(v):
                    fail(f"enum {e['name']}: override value {v!r} does not start row {row!r}")
                values.append({"name": v, "description": " ".join(w[n:])})
        else:
            for row in rows:
                m = re.match(r"^(.*?) refers to (the operation .*)$", row)
                if m:
                    values.append({"name": m.group(1).replace(" ", "_"), "description": "refers to " + m.group(2)})
                    continue
                w = row.split()
                n = 1
                while n < len(w) and not w[n][0].isupper():
                    n += 1
                values.append({"name": "_".join(w[:n]), "description": " ".join(w[n:])})
        out.append({"name": e["name"], "values": values})
    return out


def parse_errors(lines, start, end):
    begin = lines.index("2.50.1 Error Codes", start)
    errors = []
    i = begin + 1
    body = [l for l in lines[i:end]]
    # An error starts with its name in capitals (underscores lost), then prose, then either
    # "No parameters." or "Signature:" and CODE(params).
    j = 0
    while j < len(body):
        line = body[j]
        if line and re.match(r"^[A-Z0-9][A-Z0-9 _]*$", line) and line not in ("", ):
            name_words = line
            desc, k = [], j + 1
            params = None
            while k < len(body):
                l = body[k]
                if l == "No parameters.":
                    params = []
                    k += 1
                    break
                if l == "Signature:":
                    k += 1
                    while k < len(body) and not body[k]:
                        k += 1
                    sig = body[k]
                    k += 1
                    while not sig.endswith(")") and k < len(body) and body[k]:
                        sig += " " + body[k]
                        k += 1
                    m = re.match(r"^([A-Z0-9_]+)\((.*)\)$", sig)
                    if not m:
                        fail(f"bad error signature {sig!r}")
                    code = m.group(1)
                    if code != name_words.replace(" ", "_"):
                        fail(f"error heading {name_words!r} does not match signature {code}")
                    params = [p.strip() for p in m.group(2).split(",") if p.strip()]
                    break
                desc.append(l)
                k += 1
            if params is None:
                fail(f"error {name_words!r} has neither parameters nor signature")
            errors.append({"name": name_words.replace(" ", "_"), "params": params,
                           "description": join_text(desc)})
            j = k
        else:
            j += 1
    return errors


def parse_field_rows(lines, start, end):
    """The rows of a class's field table as (qualifier, text)."""
    head = index_of(lines, lambda l: l.startswith("Quals Field Type Description"), start, end)
    if head is None:
        return []
    rows = []
    for line in lines[head + 1:end]:
        q = next((q for q in QUALIFIERS if line.startswith(q + " ")), None)
        if q:
            rows.append([QUALIFIERS[q], line[len(q) + 1:]])
        elif line and rows:
            rows[-1][1] += "\n" + line
    return rows


def parse_rpcs(lines, start, end, cls, overrides):
    rpcs = []
    starts = [i for i in range(start, end) if lines[i].startswith("RPC name: ")]
    sig_fix = overrides.get("signatures", {})
    for n, s in enumerate(starts):
        e = starts[n + 1] if n + 1 < len(starts) else end
        block = lines[s:e]
        title = block[0][len("RPC name: "):]
        sig_at = block.index("Signature:")
        desc = join_text(block[block.index("Overview:") + 1:sig_at]) if "Overview:" in block else ""
        k = sig_at + 1
        while not block[k]:
            k += 1
        sig = block[k]
        rt_at = next(i for i, l in enumerate(block) if l.startswith("Return Type: "))
        err_at = next((i for i, l in enumerate(block) if l.startswith("Possible Error Codes: ")), None)
        result_desc = join_text(block[rt_at + 1:err_at if err_at else len(block)])
        errors = []
        if err_at is not None:
            text = block[err_at][len("Possible Error Codes: "):]
            for l in block[err_at + 1:]:
                if not l or not re.match(r"^[A-Z0-9 _,]+$", l):
                    break
                text += " " + l
            errors = [x.strip().replace(" ", "_") for x in text.split(",") if x.strip()]
        key = f"{cls}.{title.replace(' ', '_')}"
        if key in sig_fix:
            sig = sig_fix[key]
        try:
            result, name, params, session = parse_signature(sig)
        except ValueError as e:
            fail(f"signature of {key} is garbled ({e}) and needs an override: {sig!r}")
        if words_key(name) != words_key(title):
            fail(f"RPC title {title!r} does not match signature name {name!r}")
        # Parameter descriptions from the Arguments table, row i matching param i.
        if "Arguments:" in block:
            arg_lines = block[block.index("Arguments:") + 1:rt_at]
            attach_param_descriptions(params, arg_lines)
        rpcs.append({"name": name, "description": desc, "params": params, "result": result,
                     "result_description": result_desc, "errors": errors, "session": session})
    used = {k for k in sig_fix if k.startswith(cls + ".")}
    return rpcs, used


def type_words(ty):
    """How the field and argument tables spell a type."""
    if isinstance(ty, str):
        return ty
    if ty[0] == "ref":
        return words_key(ty[1]) + " ref"
    if ty[0] == "record":
        return words_key(ty[1]) + " record"
    if ty[0] == "enum":
        return words_key(ty[1])
    if ty[0] == "set":
        inner = type_words(ty[1])
        return "(" + inner + ") Set"
    if ty[0] == "map":
        return "(" + type_words(ty[1]) + " → " + type_words(ty[2]) + ") Map"
    raise ValueError(ty)


def type_spellings(ty):
    """All table spellings of a type (sets of primitives appear with and without parentheses)."""
    if isinstance(ty, str):
        return [ty]
    if ty[0] in ("ref", "record", "enum"):
        return [type_words(ty)]
    if ty[0] == "set":
        out = []
        for inner in type_spellings(ty[1]):
            out += ["(" + inner + ") Set", inner + " Set"]
        return out
    if ty[0] == "map":
        return ["(" + k + " → " + v + ") Map" for k in type_spellings(ty[1]) for v in type_spellings(ty[2])]
    raise ValueError(ty)


def attach_param_descriptions(params, arg_lines):
    rows = [l for l in arg_lines if l and l != "type name description"]
    text = "\n".join(rows)
    # Find each parameter's row by its table spelling, in order; its description runs to the next.
    pos, spans = 0, []
    for p in params:
        found = None
        for spelling in type_spellings(p["type"]):
            pat = re.compile(r"(^|\n)" + re.escape(spelling) + r" " + re.escape(words_key(p["name"])) + r"(?= |\n|$)")
            m = pat.search(text, pos)
            if m and (found is None or m.start() < found[0]):
                found = (m.start(), m.end())
        if found is None:
            spans.append(None)
            continue
        spans.append(found)
        pos = found[1]
    for i, p in enumerate(params):
        if spans[i] is None:
            p["description"] = ""
            continue
        stop = next((s[0] for s in spans[i + 1:] if s), len(text))
        p["description"] = join_text(text[spans[i][1]:stop].strip().split("\n"))


def match_fields(cls, rows, rpcs, table_types):
    """Names each field-table row after its getter; rows without one are parsed from the table."""
    getters = {}
    for r in rpcs:
        if (r["name"].startswith("get_") and r["session"] and len(r["params"]) == 1
                and r["params"][0]["type"] == ["ref", cls] and r["params"][0]["name"] == "self"):
            getters[r["name"][4:]] = r["result"]
    fields = []
    for qual, text in rows:
        flat = " ".join(text.split())
        best = None  # (field name, type, description); the longest field name wins
        for fname, fty in getters.items():
            name_pat = r"[\s_/]+".join(map(re.escape, words_key(fname).split()))
            for sp in type_spellings(fty):
                m = re.match(r"^" + name_pat + r"\s+" + re.escape(sp) + r"(\s+|$)", flat)
                if m and (best is None or len(fname) > len(best[0])):
                    best = (fname, fty, flat[m.end():])
        if best:
            fname, fty, desc = best
        else:
            fname, fty, desc = parse_row_without_getter(flat, table_types)
        fields.append({"name": fname, "qualifier": qual, "type": fty,
                       "description": join_text_flat(desc)})
    return fields


def join_text_flat(s):
    return re.sub(r"(\w)- (\w)", lambda m: m.group(1) + m.group(2) if m.group(2).islower() else m.group(0), s)


def parse_row_without_getter(flat, table_types):
    t = tokenize(flat)
    for k in range(1, len(t)):
        options = list(table_types.full(t, k))
        if options:
            ty, j = max(options, key=lambda o: o[1])
            name = "_".join("_".join(x.split("/")) for x in t[:k])
            return name, ty, " ".join(t[j:])
    fail(f"cannot read field row {flat!r}")


def classify(cls, rpc, fields):
    """The kind of an RPC: implicit (from a field or the class) or custom."""
    name, params = rpc["name"], rpc["params"]
    by_name = {f["name"]: f for f in fields}
    self_ref = len(params) >= 1 and params[0]["type"] == ["ref", cls] and params[0]["name"] == "self"

    def field_of(prefix):
        f = by_name.get(name[len(prefix):]) if name.startswith(prefix) else None
        return f if f and self_ref else None

    if name.startswith("get_") and len(params) == 1 and field_of("get_"):
        return "getter", field_of("get_")["name"]
    f = field_of("set_")
    if f and f["qualifier"] == "RW" and len(params) == 2 and params[1]["type"] == f["type"]:
        return "setter", f["name"]
    for prefix in ("add_to_", "add_"):
        f = field_of(prefix)
        if f and f["qualifier"] == "RW" and not isinstance(f["type"], str) and f["type"][0] in ("set", "map"):
            return "add_to", f["name"]
    for prefix in ("remove_from_", "remove_"):
        f = field_of(prefix)
        if f and f["qualifier"] == "RW" and not isinstance(f["type"], str) and f["type"][0] in ("set", "map"):
            return "remove_from", f["name"]
    if name == "create" and len(params) == 1 and params[0]["type"] == ["record", cls]:
        return "constructor", None
    if name == "destroy" and len(params) == 1 and self_ref:
        return "destructor", None
    if name == "get_by_uuid" and [p["type"] for p in params] == ["string"]:
        return "get_by_uuid", None
    if name == "get_by_name_label" and [p["type"] for p in params] == ["string"]:
        return "get_by_name_label", None
    if name == "get_record" and len(params) == 1 and self_ref:
        return "get_record", None
    if name == "get_all" and not params:
        return "get_all", None
    if name == "get_all_records" and not params:
        return "get_all_records", None
    return "custom", None


def parse_relations(lines, classes, dropped):
    start = lines.index("2.2 Relationships Between Classes")
    end = lines.index("2.3 Types", start)
    by_key = {words_key(c["name"]): c for c in classes}
    rels = []
    missing = set(dropped) - set(lines[start:end])
    if missing:
        fail(f"dropped relations not in the seed: {sorted(missing)}")
    for line in lines[start:end]:
        if line in dropped:
            continue
        m = re.match(r"^(.*) (one-to-many|many-to-many|one-to-one|unknown type)$", line)
        if not m or "." not in m.group(1):
            continue
        body, kind = m.groups()
        w = body.split()
        found = None
        for k in range(1, len(w)):
            a, b = resolve_end(" ".join(w[:k]), by_key), resolve_end(" ".join(w[k:]), by_key)
            if a and b:
                found = (a, b)
                break
        if not found:
            fail(f"cannot resolve bound fields {line!r}")
        rels.append({"a": found[0], "b": found[1], "kind": kind.replace(" ", "_")})
    return rels


def resolve_end(text, by_key):
    if "." not in text:
        return None
    cls_text, field_text = text.split(".", 1)
    c = by_key.get(words_key(cls_text))
    if not c:
        return None
    f = next((f for f in c["fields"] if words_key(f["name"]) == words_key(field_text)), None)
    return {"class": c["name"], "field": f["name"]} if f else None


def type_string(ty):
    if isinstance(ty, str):
        return ty
    return f"{ty[0]}(" + ",".join(type_string(t) if not isinstance(t, str) or ty[0] in ("set", "map") else t for t in ty[1:]) + ")"


def type_strings(node):
    """Writes every type of the model as its compact string."""
    if isinstance(node, dict):
        return {k: (type_string(v) if k in ("type", "result") else type_strings(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [type_strings(v) for v in node]
    return node


def check_references(classes, enums, errors):
    """Every type names a defined class or enum; every RPC error is a defined error code."""
    class_names = {c["name"] for c in classes}
    enum_names = {e["name"] for e in enums}
    error_names = {e["name"] for e in errors}

    def check(ty, where):
        if isinstance(ty, str):
            if ty not in PRIMITIVES:
                fail(f"{where}: unknown type {ty}")
        elif ty[0] in ("ref", "record"):
            if ty[1] not in class_names:
                fail(f"{where}: unknown class {ty[1]}")
        elif ty[0] == "enum":
            if ty[1] not in enum_names:
                fail(f"{where}: unknown enum {ty[1]}")
        else:
            for sub in ty[1:]:
                check(sub, where)

    for c in classes:
        for f in c["fields"]:
            check(f["type"], f"{c['name']}.{f['name']}")
        for m in c["messages"]:
            where = f"{c['name']}.{m['name']}"
            check(m["result"], where)
            for p in m["params"]:
                check(p["type"], where)
            for e in m["errors"]:
                if e not in error_names:
                    fail(f"{where}: unknown error code {e}")


def main():
    if len(sys.argv) != 4:
        fail("usage: extract_datamodel.py SEED_TXT OVERRIDES_JSON OUT_JSON")
    seed_path, overrides_path, out_path = sys.argv[1:]
    with open(seed_path, encoding="utf-8") as f:
        lines = clean_lines(f.read())
    with open(overrides_path, encoding="utf-8") as f:
        overrides = json.load(f)

    sections = find_sections(lines)
    class_sections = [s for s in sections if s[0] == "class"]
    class_names = [t.replace(" ", "_") for _, t, _, _ in class_sections]
    enums = parse_enums(lines, overrides)
    table_types = TableTypes(class_names, [e["name"] for e in enums])

    classes, used_sig_fixes = [], set()
    for _, title, start, end in class_sections:
        cname = title.replace(" ", "_")
        rpc_head = index_of(lines, lambda l: re.match(r"^2\.\d+\.2 RPCs associated with class", l), start, end)
        d_at = index_of(lines, lambda l: l.startswith("Description "), start, rpc_head)
        q_at = index_of(lines, lambda l: l.startswith("Quals Field Type Description"), start, rpc_head)
        description = join_text([lines[d_at][len("Description "):]] + lines[d_at + 1:q_at]) if d_at is not None else ""
        rows = parse_field_rows(lines, start, rpc_head)
        rpcs, used = parse_rpcs(lines, rpc_head, end, cname, overrides)
        used_sig_fixes |= used
        fields = match_fields(cname, rows, rpcs, table_types)
        for r in rpcs:
            kind, field = classify(cname, r, fields)
            r["kind"] = kind
            if field:
                r["field"] = field
            # Seed 1.4.3: no Async form for session, task and event, nor for what fields and
            # classes imply; as in xapi, of the implicit RPCs only create and destroy have one
            # (clients read Async.<class>.get_all_records in listMethods as a class named "Async").
            r["async"] = cname not in ("session", "task", "event") and kind in ("custom", "constructor", "destructor")
        classes.append({"name": cname, "description": description, "fields": fields, "messages": rpcs})

    unused = set(overrides.get("signatures", {})) - used_sig_fixes
    if unused:
        fail(f"signature overrides that fix nothing: {sorted(unused)}")

    relations = parse_relations(lines, classes, overrides.get("dropped_relations", []))
    err_section = next(s for s in sections if s[0] == "errors")
    errors = parse_errors(lines, err_section[2], err_section[3])

    fix_names = overrides.get("error_names", {})
    used_fixes = set()
    for c in classes:
        for m in c["messages"]:
            for i, e in enumerate(m["errors"]):
                if e in fix_names:
                    m["errors"][i] = fix_names[e]
                    used_fixes.add(e)
    if set(fix_names) - used_fixes:
        fail(f"error-name overrides that fix nothing: {sorted(set(fix_names) - used_fixes)}")
    check_references(classes, enums, errors)

    model = type_strings({
        "source": seed_path.rsplit("/", 1)[-1],
        "classes": classes,
        "enums": enums,
        "relations": relations,
        "errors": errors,
    })
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(model, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
