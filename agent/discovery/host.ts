/** Host facts for /status and for the coordinator's view of the fleet (not used for labels). */
export interface HostFacts {
  readonly hostname: string;
  readonly cpu: { readonly brand: string; readonly vendor: string; readonly cores: number };
  readonly memoryBytes: number;
  readonly os: {
    readonly distro: string;
    readonly release: string;
    readonly kernel: string;
    readonly arch: string;
  };
}

/** Loads systeminformation on first use: labels do not need it, so it stays off the start path. */
export async function readHostFacts(): Promise<HostFacts> {
  const { default: si } = await import('systeminformation');
  const [cpu, mem, os] = await Promise.all([si.cpu(), si.mem(), si.osInfo()]);
  return {
    hostname: os.hostname,
    cpu: { brand: cpu.brand, vendor: cpu.manufacturer, cores: cpu.cores },
    memoryBytes: mem.total,
    os: { distro: os.distro, release: os.release, kernel: os.kernel, arch: os.arch },
  };
}
