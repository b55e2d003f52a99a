import { describe, expect, it } from 'vitest';
import { filterContainers, highlight, nameOf, parsePort, portLabel, size, words } from '../src/lib/format';
import type { ContainerSummary } from '../src/lib/types';

const c = (name: string, image: string, state: string): ContainerSummary => ({
  id: `${name}-id`, names: [`/${name}`], image, image_id: '', command: '', created: null,
  state, status: '', ports: [], labels: {},
});

describe('format', () => {
  it('names lose their slash', () => expect(nameOf(c('web', 'nginx', 'running'))).toBe('web'));
  it('ports read as host→container', () => {
    expect(portLabel({ host_ip: '', host_port: 8080, container_port: 80, protocol: 'tcp' })).toBe('8080→80/tcp');
    expect(portLabel({ host_ip: '', host_port: 0, container_port: 53, protocol: 'udp' })).toBe('53/udp');
  });
  it('the filter matches name, image and state in any case', () => {
    const list = [c('web', 'nginx', 'running'), c('db', 'postgres', 'exited')];
    expect(filterContainers(list, 'NGI').map(nameOf)).toEqual(['web']);
    expect(filterContainers(list, 'exited').map(nameOf)).toEqual(['db']);
    expect(filterContainers(list, ' ')).toHaveLength(2);
  });
  it('sizes are short', () => {
    expect(size(999)).toBe('999 B');
    expect(size(1_500_000)).toBe('1.5 MB');
  });
  it('command lines split on spaces, quotes group', () => {
    expect(words(`sh -c 'echo hi there' ""`)).toEqual(['sh', '-c', 'echo hi there', '']);
    expect(words('  ')).toEqual([]);
  });
  it('ports parse as Docker writes them', () => {
    expect(parsePort('8080:80')).toEqual({ host: 8080, container: 80, protocol: 'tcp' });
    expect(parsePort('53/udp')).toEqual({ host: 0, container: 53, protocol: 'udp' });
    expect(parsePort('http')).toBeNull();
    expect(parsePort('70000:80')).toBeNull();
  });
  it('search hits are marked, in any case', () => {
    expect(highlight('Hello hello', 'HELLO')).toEqual([
      { text: 'Hello', hit: true },
      { text: ' ', hit: false },
      { text: 'hello', hit: true },
    ]);
  });
});

describe('instruction', () => {
  it('reads as Dockerfile text', async () => {
    const { instruction } = await import('../src/lib/format');
    expect(instruction('/bin/sh -c #(nop)  ENV A=1')).toBe('ENV A=1');
    expect(instruction('/bin/sh -c apk add curl')).toBe('RUN apk add curl');
    expect(instruction('RUN /bin/sh -c make # buildkit')).toBe('RUN /bin/sh -c make # buildkit');
  });
});
