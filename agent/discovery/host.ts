// Host facts for /status and for the coordinator's view of the fleet (not used for labels). The
// agent runs in a container: its own /etc/os-release and hostname are the image's, not the
// node's. The node's files are read through PID 1's root (the DaemonSet has hostPID); the kernel,
// CPUs and memory are the kernel's own and the same seen from any container.
import { readFile, readlink } from 'node:fs/promises';
import { arch, cpus, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export interface HostFacts {
  readonly hostname: string;
  readonly cpu: { readonly brand: string; readonly vendor: string; readonly cores: number };
  readonly memoryBytes: number;
  readonly os: {
    readonly distro: string;
    readonly release: string;
    readonly kernel: string;
    readonly arch: string;
    /** The os-release file read; says so when it was the agent container's own. */
    readonly source: string;
  };
}

export interface HostFactsOptions {
  /** Hostname when the host's /etc/hostname cannot be read. */
  readonly nodeName: string;
  /** The host's root directory as the agent sees it. Default /proc/1/root (PID 1's). */
  readonly hostRoot?: string;
  /** Read when the host's os-release is not. Default /etc/os-release (the container's). */
  readonly fallbackOsRelease?: string;
  /** Default /proc/cpuinfo (the kernel's, the same in every container). */
  readonly cpuinfo?: string;
}

/** Pure: the fields of an os-release file (shell-style KEY=value lines, values maybe quoted). */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m?.[1] === undefined || m[2] === undefined) continue;
    fields[m[1]] = unquote(m[2].trim());
  }
  return fields;
}

/** os-release(5): a value may be in single or double quotes, with \" \\ \$ \` escapes. */
function unquote(value: string): string {
  const q = value[0];
  if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) {
    const inner = value.slice(1, -1);
    return q === '"' ? inner.replace(/\\(["\\$`])/g, '$1') : inner;
  }
  return value;
}

/**
 * Pure: distro and release as systeminformation named them (which the agent reported before):
 * the distro is NAME; the release is PRETTY_NAME without the distro's name, else VERSION, cut
 * before a "(codename)", else VERSION_ID.
 */
export function osFromRelease(fields: Record<string, string>): {
  distro: string;
  release: string;
} {
  const distro = fields['NAME'] ?? fields['ID'] ?? 'unknown';
  const pretty = fields['PRETTY_NAME'] ?? '';
  let version = fields['VERSION'] ?? '';
  if (pretty.startsWith(`${distro} `)) version = pretty.slice(distro.length + 1).trim();
  version = version.split('(')[0]?.trim() ?? '';
  const release = version !== '' ? version : (fields['VERSION_ID'] ?? 'unknown');
  return { distro, release };
}

/** Arm's CPU implementer codes and the server cores of GPU nodes (lscpu has the full tables). */
const ARM_IMPLEMENTERS: Record<string, string> = {
  '0x41': 'ARM',
  '0x4e': 'NVIDIA',
  '0xc0': 'Ampere',
};
const ARM_PARTS: Record<string, string> = {
  '0xd0c': 'Neoverse-N1',
  '0xd40': 'Neoverse-V1',
  '0xd49': 'Neoverse-N2',
  '0xd4f': 'Neoverse-V2',
  '0xd84': 'Neoverse-V3',
  '0xd8e': 'Neoverse-N3',
};

const VENDORS: readonly [RegExp, string][] = [
  [/intel/i, 'Intel'],
  [/amd/i, 'AMD'],
  [/hygon/i, 'Hygon'],
  [/qemu|tcg/i, 'QEMU'],
];

/**
 * Pure: CPU brand and vendor from /proc/cpuinfo, as systeminformation named them: the model name
 * with (R)/(TM) as ®/™, without "CPU" and the clock, its first word the vendor. Arm CPUs have no
 * model name; their implementer and part codes name them.
 */
export function cpuFromCpuinfo(text: string): { brand: string; vendor: string } {
  const field = (key: string): string | undefined =>
    new RegExp(`^${key}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const model = field('model name');
  if (model !== undefined && model !== '') {
    const name = (model.split('@')[0] ?? '')
      .replace(/\(R\)/g, '®')
      .replace(/\(TM\)/g, '™')
      .replace(/\(C\)/g, '©')
      .replace(/CPU/g, '')
      .replace(/\s+/g, ' ')
      .trim();
    const [first = '', ...rest] = name.split(' ');
    const vendor = VENDORS.find(([re]) => re.test(name))?.[1] ?? first;
    return { brand: rest.join(' '), vendor };
  }
  const implementer = field('CPU implementer')?.toLowerCase();
  const part = field('CPU part')?.toLowerCase();
  if (implementer === undefined) return { brand: 'unknown', vendor: 'unknown' };
  return {
    vendor: ARM_IMPLEMENTERS[implementer] ?? implementer,
    brand: part === undefined ? 'unknown' : (ARM_PARTS[part] ?? `part ${part}`),
  };
}

const readText = (path: string): Promise<string | undefined> =>
  readFile(path, 'utf8').catch(() => undefined);

/**
 * Reads `path` of the filesystem under `root`. A symlink is followed inside `root`: the kernel
 * would resolve an absolute one (/etc/os-release -> /usr/lib/os-release) in the agent's own
 * root, and so read the container's file while we take it for the host's.
 */
async function readInRoot(root: string, path: string, hops = 8): Promise<string | undefined> {
  const at = resolve('/', path);
  const target = await readlink(join(root, at)).catch(() => undefined);
  if (target === undefined) return readText(join(root, at));
  if (hops === 0) return undefined;
  return readInRoot(root, resolve(dirname(at), target), hops - 1);
}

/**
 * The host's os-release (/etc, else /usr/lib as os-release(5) says), or the container's when
 * neither can be read, and which file it was.
 */
async function readOsRelease(
  hostRoot: string,
  fallback: string,
): Promise<{ fields: Record<string, string>; source: string }> {
  for (const path of ['/etc/os-release', '/usr/lib/os-release']) {
    const text = await readInRoot(hostRoot, path);
    if (text !== undefined) return { fields: parseOsRelease(text), source: join(hostRoot, path) };
  }
  const own = await readText(fallback);
  return {
    fields: parseOsRelease(own ?? ''),
    source: `${fallback} (the agent container's: the host's under ${hostRoot} was not readable)`,
  };
}

export async function readHostFacts(opts: HostFactsOptions): Promise<HostFacts> {
  const hostRoot = opts.hostRoot ?? '/proc/1/root';
  const [osRelease, hostnameFile, cpuinfo] = await Promise.all([
    readOsRelease(hostRoot, opts.fallbackOsRelease ?? '/etc/os-release'),
    readInRoot(hostRoot, '/etc/hostname'),
    readText(opts.cpuinfo ?? '/proc/cpuinfo'),
  ]);
  const hostname = hostnameFile?.split('\n')[0]?.trim() ?? '';
  return {
    hostname: hostname !== '' ? hostname : opts.nodeName,
    cpu: { ...cpuFromCpuinfo(cpuinfo ?? ''), cores: cpus().length },
    memoryBytes: totalmem(),
    os: {
      ...osFromRelease(osRelease.fields),
      kernel: release(),
      arch: arch(),
      source: osRelease.source,
    },
  };
}
