import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { DEFAULT_RECONNECTION_CONFIG, ReconnectionManager } from '../../src/index.js';

const NS = '/project/demo';

describe('ReconnectionManager', () => {
  it('has the spec defaults', () => {
    expect(new ReconnectionManager().config).toEqual({
      maxAttempts: 5,
      baseDelay: 1000,
      maxDelay: 30000,
      backoffFactor: 2,
      jitter: true,
    });
    expect(DEFAULT_RECONNECTION_CONFIG.maxAttempts).toBe(5);
  });

  it('doubles the delay per attempt and caps it at maxDelay', () => {
    const manager = new ReconnectionManager({ jitter: false, maxAttempts: 10 });
    const delays: number[] = [];
    for (let i = 0; i < 7; i += 1) {
      delays.push(manager.calculateDelay(NS));
      manager.recordAttempt(NS);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  });

  it('scales by a jitter factor between 0.5 and 1.0', () => {
    expect(new ReconnectionManager({}, () => 0).calculateDelay(NS)).toBe(500);
    expect(new ReconnectionManager({}, () => 0.5).calculateDelay(NS)).toBe(750);
    const high = new ReconnectionManager({}, () => 0.999999);
    high.recordAttempt(NS);
    expect(high.calculateDelay(NS)).toBeCloseTo(2000, 2);

    const random = new ReconnectionManager();
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const base = Math.min(1000 * 2 ** attempt, 30000);
      for (let i = 0; i < 200; i += 1) {
        const delay = random.calculateDelay(NS);
        expect(delay).toBeGreaterThanOrEqual(base * 0.5);
        expect(delay).toBeLessThanOrEqual(base);
      }
      random.recordAttempt(NS);
    }
  });

  it('allows maxAttempts attempts per namespace, and starts over after a reset', () => {
    const manager = new ReconnectionManager();
    for (let i = 0; i < 5; i += 1) {
      expect(manager.shouldReconnect(NS)).toBe(true);
      manager.recordAttempt(NS);
    }
    expect(manager.shouldReconnect(NS)).toBe(false);
    expect(manager.shouldReconnect('/portal')).toBe(true);
    manager.resetAttempts(NS);
    expect(manager.attempts(NS)).toBe(0);
    expect(manager.shouldReconnect(NS)).toBe(true);
  });

  describe('schedule', () => {
    beforeEach(() => {
      vi.useFakeTimers();
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    it('runs the retry after the calculated delay and counts it', () => {
      const manager = new ReconnectionManager({ jitter: false });
      const retry = vi.fn();
      expect(manager.schedule(NS, retry)).toEqual({ namespace: NS, attempt: 1, delay: 1000 });
      vi.advanceTimersByTime(999);
      expect(retry).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      expect(retry).toHaveBeenCalledTimes(1);
      expect(manager.schedule(NS, retry)).toEqual({ namespace: NS, attempt: 2, delay: 2000 });
    });

    it('keeps a pending retry instead of doubling it', () => {
      const manager = new ReconnectionManager({ jitter: false });
      const retry = vi.fn();
      manager.schedule(NS, retry);
      expect(manager.schedule(NS, retry)).toBeUndefined();
      expect(manager.scheduled(NS)).toEqual({ namespace: NS, attempt: 1, delay: 1000 });
      vi.runAllTimers();
      expect(retry).toHaveBeenCalledTimes(1);
      expect(manager.attempts(NS)).toBe(1);
    });

    it('schedules nothing once the attempts are used up', () => {
      const manager = new ReconnectionManager({ jitter: false });
      const delays: number[] = [];
      for (let i = 0; i < 5; i += 1) {
        delays.push(manager.schedule(NS, () => undefined)?.delay ?? -1);
        vi.runAllTimers();
      }
      expect(delays).toEqual([1000, 2000, 4000, 8000, 16000]);
      expect(manager.schedule(NS, () => undefined)).toBeUndefined();
    });

    it('cancels on reset and on clear', () => {
      const manager = new ReconnectionManager();
      const retry = vi.fn();
      manager.schedule(NS, retry);
      manager.resetAttempts(NS);
      manager.schedule('/portal', retry);
      manager.clear();
      vi.runAllTimers();
      expect(retry).not.toHaveBeenCalled();
      expect(manager.attempts('/portal')).toBe(0);
    });
  });
});
