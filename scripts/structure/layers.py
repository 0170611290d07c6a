# The imports that run up a layer of the target map in docs/layers-plan.md (a file-level view).
import os, subprocess, sys, re
here = os.path.dirname(os.path.abspath(__file__))
out = subprocess.run(['python3', os.path.join(here, 'graph.py'), 'shared-protocol/src', '--edges'], capture_output=True, text=True, cwd=os.path.join(here, '..', '..')).stdout
edges = {}
for l in out.splitlines():
    if ' -> ' in l:
        a, b = l.split(' -> ')
        edges[a] = eval(b)
def layer(f):
    m = [('core', r'^(clock|text_enum|grant_type|error|outbound|locks)\.rs$|^tokens/(secrets|access_token)\.rs$|^server/scope\.rs$'),
         ('store', r'^store/(?!link\.rs)'),
         ('reciprocal', r'^link/(mod|grant|hooks|trace)\.rs$|^store/link\.rs$'),
         ('peer-client', r'^client/'),
         ('server', r'^server/|^tokens/|^resource/|^accounts\.rs$|^audit/(mod|verify)\.rs$|^web/(session|form|limits)\.rs$'),
         ('web', r'.*')]
    for name, rx in m:
        if re.search(rx, f): return name
allowed = {'core': {'core'}, 'store': {'core','store'}, 'server': {'core','store','server'},
           'peer-client': {'core','peer-client'}, 'reciprocal': {'core','store','server','peer-client','reciprocal'},
           'web': {'core','store','server','peer-client','reciprocal','web'}}
n = 0
for a in sorted(edges):
    for b in sorted(edges[a]):
        la, lb = layer(a), layer(b)
        if lb not in allowed[la]:
            n += 1; print(f'{la:11} {a:32} -> {lb:11} {b}')
print('up-layer file edges:', n)
