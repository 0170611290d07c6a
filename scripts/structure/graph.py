# How the protocol crate hangs together (the figures the layers plan tracks):
#   python3 scripts/structure/graph.py shared-protocol/src   import circles (files)
#   python3 scripts/structure/layers.py                      imports that run up a layer of the plan
#   scripts/structure/count-pub.sh                           pub items outside tests
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'shared-protocol/src'
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.relpath(os.path.join(d, f), root)
            files[p] = open(os.path.join(d, f)).read()
def mod_of(p):
    p = p[:-3]
    if p.endswith('/mod'): p = p[:-4]
    return p.replace('/', '::')
mods = {mod_of(p): p for p in files}
def resolve(path):
    parts = path.split('::')
    for n in range(len(parts), 0, -1):
        m = '::'.join(parts[:n])
        if m in mods: return mods[m]
    return None
edges = {}
for p, text in files.items():
    # drop test modules (from #[cfg(test)] to end) and comments
    cut = text.find('#[cfg(test)]')
    body = text if cut < 0 else text[:cut]
    if p.endswith('tests.rs') or p == 'test_support.rs': continue
    body = '\n'.join(l for l in body.splitlines() if not l.strip().startswith('//'))
    targets = set()
    for m in re.finditer(r'crate::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)(?:::\{([^}]*)\})?', body):
        base = m.group(1)
        if m.group(2):
            for item in m.group(2).split(','):
                item = item.strip().split(' ')[0]
                if item and item != 'self' and item[0].islower():
                    t = resolve(base + '::' + item)
                else:
                    t = resolve(base)
                if t: targets.add(t)
        else:
            t = resolve(base)
            if t: targets.add(t)
    for m in re.finditer(r'use crate::\{([^}]*)\}', body):
        for name in [x.strip() for x in m.group(1).split(',') if x.strip()]:
            t = resolve(name)
            if t: targets.add(t)
            for u in re.finditer(r'(?<![:\w])' + name + r'((?:::[a-z_][a-z0-9_]*)+)', body):
                t = resolve(name + u.group(1))
                if t: targets.add(t)
    for m in re.finditer(r'\bsuper::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)', body):
        here = mod_of(p).split('::')
        parent = here[:-1] if not p.endswith('mod.rs') else here[:-1]
        t = resolve('::'.join(parent + [m.group(1)]))
        if t: targets.add(t)
    targets.discard(p)
    edges[p] = targets
# Tarjan SCC
sys.setrecursionlimit(10000)
index = {}; low = {}; stack = []; on = set(); sccs = []; i = [0]
def sc(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        sccs.append(c)
for v in edges:
    if v not in index: sc(v)
big = sorted([c for c in sccs if len(c) > 1], key=len, reverse=True)
print('files:', len(edges), 'edges:', sum(len(t) for t in edges.values()))
for c in big: print(len(c), sorted(c))
if '--edges' in sys.argv:
    for p in sorted(edges): print(p, '->', sorted(edges[p]))
