import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The processes a nucleus runs for its components, found the way an operator would: each
 * component process runs in `<root>/work/<component>`. For each: pid, the executable the kernel
 * runs (`/proc/<pid>/exe`), its real uid and gid, and its command line.
 */
export interface ComponentProcess {
  component: string;
  pid: number;
  exe: string;
  uid: number;
  gid: number;
  cmdline: string[];
}

export function componentProcesses(nucleusRoot: string): ComponentProcess[] {
  const work = join(nucleusRoot, 'work') + '/';
  const out: ComponentProcess[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cwd = readlinkSync(`/proc/${d}/cwd`);
      if (!cwd.startsWith(work)) continue;
      const status = readFileSync(`/proc/${d}/status`, 'utf8');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
      const gid = Number(/^Gid:\s+(\d+)/m.exec(status)![1]);
      out.push({
        component: cwd.slice(work.length).split('/')[0]!,
        pid: Number(d),
        exe: readlinkSync(`/proc/${d}/exe`),
        uid,
        gid,
        cmdline: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean),
      });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out.sort((a, b) => (a.component < b.component ? -1 : a.component > b.component ? 1 : a.pid - b.pid));
}
