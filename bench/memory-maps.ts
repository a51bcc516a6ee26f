// Where a process's resident memory is, by kind of mapping (Linux /proc/<pid>/smaps): the parts of RSS
// outside V8's heap that a soak can tell apart, so that a growth is not guessed at.
import { readFileSync } from 'node:fs';

export interface ResidentParts {
  /** WebAssembly memories (PGlite's PostgreSQL): what of them has been touched, not their size. */
  wasm: number;
  /** The C heaps: glibc's main heap (brk) and the 64 MiB heaps of its per-thread arenas. */
  malloc: number;
  /** Anonymous executable mappings: code V8 compiled, WebAssembly's and JavaScript's (whose pages V8's heap also counts). */
  code: number;
}

interface Mapping { start: bigint; end: bigint; perms: string; name: string; size: number; rss: number }

const KiB = 1024;
const ARENA_ALIGNMENT = 64n * 1024n * 1024n; // glibc's HEAP_MAX_SIZE on 64-bit: every arena heap starts on it
const WASM_GUARD_BYTES = 1024 ** 3; // V8 reserves GiBs of inaccessible address space after a wasm memory

function mappingsOf(pid: number): Mapping[] {
  return readFileSync(`/proc/${pid}/smaps`, 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/).map((block) => {
    const [range = '', perms = '', , , , name = ''] = block.slice(0, block.indexOf('\n')).split(/\s+/);
    const [start, end] = range.split('-').map((hex) => BigInt(`0x${hex}`));
    const kB = (field: string) => Number(new RegExp(`\\n${field}:\\s+(\\d+) kB`).exec(block)?.[1] ?? 0) * KiB;
    return { start: start!, end: end!, perms, name, size: kB('Size'), rss: kB('Rss') };
  });
}

/** Resident bytes of each part; the rest of RSS is V8's heap, Buffers' large blocks, stacks and mapped files. */
export function residentPartsOf(pid: number): ResidentParts {
  const parts: ResidentParts = { wasm: 0, malloc: 0, code: 0 };
  const mappings = mappingsOf(pid);
  mappings.forEach((mapping, i) => {
    const next = mappings[i + 1];
    // The inaccessible reservation right after a read-write mapping: a wasm memory's guard, or an arena's unused part.
    const reserve = next && next.perms === '---p' && next.start === mapping.end ? next.size : 0;
    if (mapping.name === '[heap]') parts.malloc += mapping.rss;
    else if (mapping.name) return;
    else if (mapping.perms.startsWith('rw') && reserve >= WASM_GUARD_BYTES) parts.wasm += mapping.rss;
    else if (mapping.perms.startsWith('rw') && mapping.start % ARENA_ALIGNMENT === 0n && (reserve > 0 || mapping.size === Number(ARENA_ALIGNMENT))) parts.malloc += mapping.rss;
    else if (mapping.perms.includes('x')) parts.code += mapping.rss;
  });
  return parts;
}
