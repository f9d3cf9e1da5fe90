import { readFileSync } from 'node:fs';
import os from 'node:os';

/** How busy the machine was while a benchmark ran (its own load included). */
export interface MachineLoad {
  /** 1-minute load average: lowest and highest sample. */
  loadAverage: { min: number; max: number };
  /** Share of all CPUs' time spent busy (anything but idle and iowait), averaged over the stage. */
  cpuBusy: number;
}

function cpuTimes(): { busy: number; total: number } {
  // First line of /proc/stat: user nice system idle iowait irq softirq steal …, in clock ticks.
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * Samples the load average once a second until `stop()`, and the CPU busy share over the whole
 * span. A load average well above the CPU count while a stage ran means other work competed with
 * it: the ratios still compare like with like, the absolute figures do not.
 */
export function sampleMachineLoad(): { stop(): MachineLoad } {
  const startTimes = cpuTimes();
  const samples = [os.loadavg()[0] ?? 0];
  const timer = setInterval(() => samples.push(os.loadavg()[0] ?? 0), 1_000);
  return {
    stop() {
      clearInterval(timer);
      samples.push(os.loadavg()[0] ?? 0);
      const endTimes = cpuTimes();
      const total = endTimes.total - startTimes.total;
      return {
        loadAverage: { min: Math.min(...samples), max: Math.max(...samples) },
        cpuBusy: total > 0 ? (endTimes.busy - startTimes.busy) / total : NaN,
      };
    },
  };
}
