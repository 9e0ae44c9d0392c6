#!/usr/bin/env python3
"""P1 diagnosis, not the reported figures: a per-request timeline of round trips through the
relay and straight to the server, from `perf script` of raw_syscalls and sched events of the
bench, the relay and the server (bench/p1_trace.sh runs it; docs/benchmarks.md, "P1 round 6").

Input: perf script -F comm,pid,tid,cpu,time,event,trace  (stdin)
Args: bench_pid relay_pid server_pid
Prints, for ping-like (small answer) and health_check-like (large answer) round trips through
the relay, the median time between milestones:
  B>  bench writes the request to the relay's stdin (pipe write enter)
  R<  relay's read of it returns
  Rs  relay sends it on the WebSocket (sendto enter)
  S<  server's recvfrom returns with it
  Ss  server sends the answer (sendto enter)
  Rr  relay's recvfrom returns with the answer
  Rw  relay writes it to stdout (write enter)
  B<  bench's read of it returns
and the direct side (B> = bench sendto, S<, Ss, B< = bench recvfrom).
"""
import re, sys, statistics, collections

bench, relay, server = (int(a) for a in sys.argv[1:4])
NR = {0: 'read', 1: 'write', 44: 'sendto', 45: 'recvfrom', 202: 'futex', 232: 'epoll_wait',
      281: 'epoll_pwait', 441: 'epoll_pwait2', 257: 'openat', 217: 'getdents64', 3: 'close',
      20: 'writev', 46: 'sendmsg', 47: 'recvmsg', 19: 'readv', 16: 'ioctl', 262: 'newfstatat',
      4: 'stat', 5: 'fstat', 6: 'lstat', 332: 'statx'}
line_re = re.compile(r'^\s*(.+?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$')
enter_re = re.compile(r'NR (\d+) \(([^)]*)\)')
exit_re = re.compile(r'NR (\d+) = (-?\d+)')
events = []  # (t, pid, tid, kind, name, fd, ret)
pending = {}
wakeups = []
for line in sys.stdin:
    m = line_re.match(line)
    if not m:
        continue
    comm, pid, tid, cpu, t, ev, rest = m.groups()
    pid, tid, t = int(pid), int(tid), float(t)
    if ev.endswith('sys_enter'):
        e = enter_re.search(rest)
        if not e:
            continue
        nr = int(e.group(1)); args = e.group(2).split(',')
        fd = int(args[0].strip(), 16) if args and args[0].strip() else -1
        pending[tid] = (t, nr, fd)
        events.append((t, pid, tid, 'enter', NR.get(nr, str(nr)), fd, None, int(cpu)))
    elif ev.endswith('sys_exit'):
        e = exit_re.search(rest)
        if not e:
            continue
        nr = int(e.group(1)); ret = int(e.group(2))
        st = pending.pop(tid, None)
        fd = st[2] if st and st[1] == nr else -1
        events.append((t, pid, tid, 'exit', NR.get(nr, str(nr)), fd, ret, int(cpu)))
    elif ev.endswith('sched_wakeup'):
        mm = re.search(r'pid=(\d+)', rest)
        events.append((t, pid, tid, 'wakeup', rest.split()[0], int(mm.group(1)) if mm else -1, None, int(cpu)))
    elif ev.endswith('sched_switch'):
        events.append((t, pid, tid, 'switch', rest, -1, None, int(cpu)))
events.sort(key=lambda e: e[0])

def who(pid):
    return {bench: 'bench', relay: 'relay', server: 'server'}.get(pid, str(pid))

def by_size(reqs, keys):
    """Complete round trips, grouped by answer size (ping's small answer, health_check's large)."""
    groups = collections.defaultdict(list)
    for r in reqs:
        if all(k in r for k in keys):
            groups['small' if r['size'] < 300 else 'large'].append(r)
    return sorted(groups.items())


def phases(rs, keys):
    """Prints the median of each phase and of the whole round trip."""
    for a, b in zip(keys, keys[1:]):
        d = [1e6 * (r[b] - r[a]) for r in rs]
        print(f'  {a:>3} -> {b:<3} p50 {statistics.median(d):7.1f} us   mean {statistics.mean(d):7.1f}')
    d = [1e6 * (r['B<'] - r['B>']) for r in rs]
    print(f'  total      p50 {statistics.median(d):7.1f} us')


# A round trip's milestones after the first, in order: (key, process, enter/exit, system call).
# An exit counts only when it moved data; the answer's size is taken at `size_at`.
RELAY = [('R<', 'relay', 'exit', 'read'), ('Rs', 'relay', 'enter', 'sendto'),
         ('S<', 'server', 'exit', 'recvfrom'), ('Ss', 'server', 'enter', 'sendto'),
         ('Rr', 'relay', 'exit', 'recvfrom'), ('Rw', 'relay', 'enter', 'write'),
         ('B<', 'bench', 'exit', 'read')]
DIRECT = [('S<', 'server', 'exit', 'recvfrom'), ('Ss', 'server', 'enter', 'sendto'),
          ('B<', 'bench', 'exit', 'recvfrom')]


def round_trips(first, milestones, size_at):
    """Round trips, each starting at the bench's `first` system call (write to the relay's stdin,
    or sendto to the server), with the time of each milestone and the events in between."""
    out, cur = [], None
    for ev in events:
        t, pid, tid, kind, name, fd, ret, cpu = ev
        w = who(pid)
        if w == 'bench' and kind == 'enter' and name == first:
            cur = {'B>': t, 'trace': [], 'next': 0}
            out.append(cur)
            continue
        if cur is None:
            continue
        cur['trace'].append(ev)
        if cur['next'] >= len(milestones):
            continue
        key, proc, want, call = milestones[cur['next']]
        if w == proc and kind == want and name == call and (want == 'enter' or (ret or 0) > 0):
            cur[key] = t
            cur['next'] += 1
            if key == size_at:
                cur['size'] = ret
    return out


reqs = round_trips('write', RELAY, 'Rr')

keys = ['B>', 'R<', 'Rs', 'S<', 'Ss', 'Rr', 'Rw', 'B<']
for g, rs in by_size(reqs, keys):
    print(f'relay side, {g} answers: {len(rs)} round trips (of {len(reqs)} writes)')
    phases(rs, keys)
    # Syscalls and wakeups per process inside the round trip (median counts).
    cnt = collections.defaultdict(list)
    for r in rs:
        c = collections.Counter()
        for ev in r['trace']:
            if ev[0] > r['B<']:
                break
            t, pid, tid, kind, name, fd, ret, cpu = ev
            if kind == 'enter':
                c[f'{who(pid)}:{name}'] += 1
            elif kind == 'wakeup':
                c[f'{who(pid)}:wakes'] += 1
            elif kind == 'switch':
                c[f'{who(pid)}:switch'] += 1
        for k in set(list(c) + list(cnt)):
            cnt[k].append(c.get(k, 0))
    print('  per round trip (mean):', ', '.join(f'{k} {statistics.mean(v):.2f}' for k, v in sorted(cnt.items()) if statistics.mean(v) >= 0.05))
    if '-v' in sys.argv:
        r = rs[len(rs) // 2]
        t0 = r['B>']
        for ev in r['trace']:
            if ev[0] > r['B<'] + 1e-6:
                break
            t, pid, tid, kind, name, fd, ret, cpu = ev
            print(f'    {1e6*(t-t0):8.1f} cpu{cpu} {who(pid)}/{tid} {kind} {name} fd={fd} ret={ret}')

# Direct side: bench sendto -> server recvfrom -> server sendto -> bench recvfrom.
dreqs = round_trips('sendto', DIRECT, 'B<')
dkeys = ['B>', 'S<', 'Ss', 'B<']
for g, rs in by_size(dreqs, dkeys):
    print(f'direct side, {g} answers: {len(rs)} round trips')
    phases(rs, dkeys)
