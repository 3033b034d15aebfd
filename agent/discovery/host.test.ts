import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { arch, release, totalmem } from 'node:os';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cpuFromCpuinfo, osFromRelease, parseOsRelease, readHostFacts } from './host.js';

describe('parseOsRelease', () => {
  it.each([
    ['unquoted', 'ID=ubuntu\n', { ID: 'ubuntu' }],
    ['double quotes', 'NAME="Ubuntu"\n', { NAME: 'Ubuntu' }],
    ['single quotes', "NAME='Rocky Linux'\n", { NAME: 'Rocky Linux' }],
    ['escapes in double quotes', 'X="a \\"b\\" \\\\ \\$c"', { X: 'a "b" \\ $c' }],
    ['no escapes in single quotes', "X='a \\\"b'", { X: 'a \\"b' }],
    [
      '= inside a value',
      'HOME_URL="https://x.example/?a=b"',
      { HOME_URL: 'https://x.example/?a=b' },
    ],
    ['comments and blank lines', '# a comment\n\n  # indented\nID=rhel\n', { ID: 'rhel' }],
    [
      'CRLF and spaces around',
      '  ID=debian  \r\nVERSION_ID="12"\r\n',
      { ID: 'debian', VERSION_ID: '12' },
    ],
    ['lines that are not assignments', 'garbage\n=x\n1A=b\nID=sles\n', { ID: 'sles' }],
    ['an unbalanced quote is kept', 'NAME="Ubuntu', { NAME: '"Ubuntu' }],
    ['empty value', 'VARIANT=\n', { VARIANT: '' }],
    ['the last one wins', 'ID=a\nID=b\n', { ID: 'b' }],
    ['empty file', '', {}],
  ])('%s', (_what, text, expected) => {
    expect(parseOsRelease(text)).toEqual(expected);
  });
});

const UBUNTU = `PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
`;

describe('osFromRelease', () => {
  it.each([
    ['Ubuntu: PRETTY_NAME less the name', UBUNTU, { distro: 'Ubuntu', release: '22.04.4 LTS' }],
    [
      'RHEL: PRETTY_NAME does not start with NAME, VERSION without its codename',
      'NAME="Red Hat Enterprise Linux"\nVERSION="9.3 (Plow)"\nVERSION_ID="9.3"\nPRETTY_NAME="Red Hat Enterprise Linux 9.3 (Plow)"',
      { distro: 'Red Hat Enterprise Linux', release: '9.3' },
    ],
    [
      'Debian',
      'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"',
      { distro: 'Debian GNU/Linux', release: '12' },
    ],
    [
      'only VERSION_ID',
      'NAME=Flatcar\nVERSION_ID=3815.2.0',
      { distro: 'Flatcar', release: '3815.2.0' },
    ],
    ['no NAME: the ID', 'ID=alpine\nVERSION_ID=3.19.1', { distro: 'alpine', release: '3.19.1' }],
    ['nothing', '', { distro: 'unknown', release: 'unknown' }],
  ])('%s', (_what, text, expected) => {
    expect(osFromRelease(parseOsRelease(text))).toEqual(expected);
  });
});

describe('cpuFromCpuinfo', () => {
  it.each([
    [
      'Intel',
      'processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n',
      { vendor: 'Intel', brand: 'Xeon® Platinum 8480+' },
    ],
    [
      'Intel with CPU and clock',
      'model name\t: Intel(R) Xeon(R) CPU E5-2698 v4 @ 2.20GHz\n',
      { vendor: 'Intel', brand: 'Xeon® E5-2698 v4' },
    ],
    [
      'AMD',
      'model name\t: AMD EPYC 9654 96-Core Processor\n',
      { vendor: 'AMD', brand: 'EPYC 9654 96-Core Processor' },
    ],
    [
      'Grace (Arm, no model name)',
      'processor\t: 0\nBogoMIPS\t: 2000.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd4f\n',
      { vendor: 'ARM', brand: 'Neoverse-V2' },
    ],
    [
      'an Arm part not in the table',
      'CPU implementer\t: 0x41\nCPU part\t: 0xd99\n',
      { vendor: 'ARM', brand: 'part 0xd99' },
    ],
    ['nothing known', 'processor\t: 0\n', { vendor: 'unknown', brand: 'unknown' }],
  ])('%s', (_what, text, expected) => {
    expect(cpuFromCpuinfo(text)).toEqual(expected);
  });
});

describe('readHostFacts', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  async function tree(files: Record<string, string>): Promise<string> {
    const root = await mkdtemp(join(tmpdir(), 'noma-host-'));
    dirs.push(root);
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), text);
    }
    return root;
  }

  it("reads the host's os-release and hostname; the kernel, memory and arch from node:os", async () => {
    const host = await tree({ 'etc/os-release': UBUNTU, 'etc/hostname': 'gpu-host-01\n' });
    const own = await tree({ 'os-release': 'NAME="Debian GNU/Linux"\nVERSION_ID="12"' });
    const cpu = await tree({ cpuinfo: 'model name\t: AMD EPYC 9654 96-Core Processor\n' });
    const facts = await readHostFacts({
      nodeName: 'node-a',
      hostRoot: host,
      fallbackOsRelease: join(own, 'os-release'),
      cpuinfo: join(cpu, 'cpuinfo'),
    });
    expect(facts).toMatchObject({
      hostname: 'gpu-host-01',
      cpu: { vendor: 'AMD', brand: 'EPYC 9654 96-Core Processor' },
      memoryBytes: totalmem(),
      os: {
        distro: 'Ubuntu',
        release: '22.04.4 LTS',
        kernel: release(),
        arch: arch(),
        source: join(host, 'etc/os-release'),
      },
    });
    expect(facts.cpu.cores).toBeGreaterThan(0);
  });

  it('follows an absolute symlink inside the host root, not into the container', async () => {
    // Resolved by the kernel, the link would name this machine's own /usr/lib/os-release.
    const host = await tree({ 'usr/lib/os-release': 'NAME="Host OS"\nVERSION_ID=1' });
    await mkdir(join(host, 'etc'));
    await symlink('/usr/lib/os-release', join(host, 'etc/os-release'));
    const facts = await readHostFacts({ nodeName: 'node-a', hostRoot: host });
    expect(facts.os).toMatchObject({
      distro: 'Host OS',
      release: '1',
      source: join(host, 'etc/os-release'),
    });
  });

  it('falls back to /usr/lib/os-release of the host', async () => {
    const host = await tree({ 'usr/lib/os-release': 'NAME=Flatcar\nVERSION_ID=3815.2.0' });
    const facts = await readHostFacts({ nodeName: 'node-a', hostRoot: host });
    expect(facts.os).toMatchObject({
      distro: 'Flatcar',
      source: join(host, 'usr/lib/os-release'),
    });
  });

  it("says so when it could only read the container's os-release; hostname is the node's name", async () => {
    const own = await tree({ 'os-release': 'NAME="Debian GNU/Linux"\nVERSION_ID="12"' });
    const missing = join(own, 'no-such-root');
    const facts = await readHostFacts({
      nodeName: 'node-a',
      hostRoot: missing,
      fallbackOsRelease: join(own, 'os-release'),
    });
    expect(facts.hostname).toBe('node-a');
    expect(facts.os.distro).toBe('Debian GNU/Linux');
    expect(facts.os.source).toBe(
      `${join(own, 'os-release')} (the agent container's: the host's under ${missing} was not readable)`,
    );
  });

  it('an empty hostname file also gives the node name', async () => {
    const host = await tree({ 'etc/os-release': UBUNTU, 'etc/hostname': '\n' });
    const facts = await readHostFacts({ nodeName: 'node-b', hostRoot: host });
    expect(facts.hostname).toBe('node-b');
  });
});
