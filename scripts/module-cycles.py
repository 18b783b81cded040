#!/usr/bin/env python3
"""Import cycles among the top-level modules of src/ (`crate::NAME` references,
test code excluded). Prints each cycle found; exits 1 if there is one."""
import pathlib
import re
import sys

src = pathlib.Path(__file__).resolve().parent.parent / "src"
mods = {p.stem if p.is_file() else p.name for p in src.iterdir()
        if (p.suffix == ".rs" and p.stem not in ("lib", "main")) or (p.is_dir())}
graph = {m: set() for m in mods}
for path in src.rglob("*.rs"):
    rel = path.relative_to(src)
    top = rel.parts[0].removesuffix(".rs")
    if top not in graph:
        continue
    if rel.name == "tests.rs":
        continue
    text = path.read_text()
    # Unit tests at the end of a file are not part of the module's dependencies.
    text = text.split("#[cfg(test)]\nmod tests {")[0]
    # Comments (doc links included) are not dependencies.
    text = re.sub(r"//[^\n]*", "", text)
    for m in re.findall(r"crate::([a-z_][a-z0-9_]*)", text):
        if m in graph and m != top:
            graph[top].add(m)
    for group in re.findall(r"use crate::\{([^}]*)\}", text):
        for m in re.findall(r"\b([a-z_][a-z0-9_]*)\b", group):
            if m in graph and m != top:
                graph[top].add(m)

# Strongly connected components (Tarjan).
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in graph[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in index:
        visit(v)
for comp in sccs:
    edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp]
    print("cycle:", ", ".join(edges))
if "-v" in sys.argv:
    for m in sorted(graph):
        print(f"{m}: {' '.join(sorted(graph[m]))}")
sys.exit(1 if sccs else 0)
