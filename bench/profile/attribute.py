#!/usr/bin/env python3
"""Reads `perf script` output of the gateway (bench/profile/record.sh) and attributes its samples.

  attribute.py FILE modules             each sample to the Swift module of its first frame in the gateway's binary
                                        (so the reference counting and allocation a function causes count as its own)
  attribute.py FILE symbols MODULE      the same, by symbol, for one module
  attribute.py FILE threads             samples per thread name (event loops, the audit writer's queue, the pool)
  attribute.py FILE inclusive REGEX     inclusive share of every symbol matching REGEX
  attribute.py FILE children REGEX      for samples under REGEX (outermost match): its direct callees
  attribute.py FILE callers REGEX       for samples under REGEX (outermost match): who called it
Add --thread REGEX (before FILE) to look at the samples of matching threads only. Symbols are demangled with
`swift demangle` when it is on the PATH.
"""
import collections, re, shutil, signal, subprocess, sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # piped into head: stop quietly

def samples(path, thread):
    """Yields each sample's frames, leaf first, as (symbol, dso)."""
    stack, name = [], None
    for line in open(path, errors='replace'):
        line = line.rstrip('\n')
        if not line.strip():
            if stack and (thread is None or (name and thread.search(name))): yield stack
            stack, name = [], None
            continue
        if line[0] not in ' \t':
            name = line.split()[0]
            continue
        parts = line.strip().split(' ', 1)
        match = re.match(r'(.*) \((.*)\)$', parts[1]) if len(parts) == 2 else None
        if match: stack.append((re.sub(r'\+0x[0-9a-f]+$', '', match.group(1)), match.group(2)))
    if stack and (thread is None or (name and thread.search(name))): yield stack

def module(symbol):
    match = re.match(r'\$s(\d+)', symbol)
    return symbol[2 + len(match.group(1)):2 + len(match.group(1)) + int(match.group(1))] if match else symbol[:30]

def in_binary(dso):
    return not re.search(r'\.so(\.[0-9.]+)?$|^\[', dso)

def first_in_binary(stack):
    return next((symbol for symbol, dso in stack if in_binary(dso)), None)

def show(counter, total, limit=40):
    items = counter.most_common(limit)
    names = [name for name, _ in items]
    if shutil.which('swift'):
        out = subprocess.run(['swift', 'demangle', '--simplified', '--compact'], input='\n'.join(names), capture_output=True, text=True).stdout
        names = out.split('\n')[:len(items)]
    for (_, count), name in zip(items, names): print(f"{100 * count / total:6.2f}% {name[:160]}")

def main(argv):
    thread = None
    if argv[:1] == ['--thread']: thread, argv = re.compile(argv[1]), argv[2:]
    path, command, rest = argv[0], argv[1], argv[2:]
    counter, total = collections.Counter(), 0
    for stack in samples(path, thread):
        total += 1
        if command == 'modules':
            first = first_in_binary(stack)
            counter[module(first) if first else '<' + stack[0][1].split('/')[-1] + '>'] += 1
        elif command == 'symbols':
            first = first_in_binary(stack)
            if first and module(first) == rest[0]: counter[first] += 1
        elif command == 'threads':
            pass
        else:
            pattern = re.compile(rest[0])
            hits = [index for index, (symbol, _) in enumerate(stack) if pattern.search(symbol)]
            if not hits: continue
            if command == 'inclusive':
                for symbol in {stack[index][0] for index in hits}: counter[symbol] += 1
            elif command == 'children':
                counter[stack[hits[-1] - 1][0] if hits[-1] > 0 else '<self>'] += 1
            elif command == 'callers':
                counter[stack[hits[-1] + 1][0] if hits[-1] + 1 < len(stack) else '<top>'] += 1
    if command == 'threads':
        names = collections.Counter()
        for line in open(path, errors='replace'):
            if line and line[0] not in ' \t\n' and (thread is None or thread.search(line.split()[0])): names[line.split()[0]] += 1
        show(names, sum(names.values()), 20)
        return
    print(f"{total} samples")
    show(counter, total)

if __name__ == '__main__':
    if len(sys.argv) < 3: sys.exit(__doc__)
    main(sys.argv[1:])
