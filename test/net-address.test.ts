import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { classifyAddress, formatAddress, parseAddress, parseIPv4, isLocalHostName } from '../src/net/address.js';
import { checkUrlForm } from '../src/net/fetch.js';

const cls = (s: string) => {
  const p = parseAddress(s);
  assert.ok(p, `${s} should parse`);
  return classifyAddress(p!);
};

test('IPv4 parses every inet_aton spelling of loopback to the same bytes', () => {
  for (const s of ['127.0.0.1', '2130706433', '0x7f.0.0.1', '0x7f000001', '0177.0.0.1', '127.1', '127.0.1', '0x7F.1', '127.0.0.1.']) {
    assert.equal(Array.from(parseIPv4(s)!), [127, 0, 0, 1], s);
  }
  for (const s of ['256.0.0.1', '1.2.3.4.5', '4294967296', 'abc', '1..2', '09.1.1.1', '']) assert.is(parseIPv4(s), undefined, s);
  assert.equal(Array.from(parseIPv4('0x')!), [0, 0, 0, 0], 'a bare 0x is zero, as in WHATWG URLs');
});

test('IPv6 forms that embed IPv4 are classified by the embedded address', () => {
  assert.is(cls('::1'), 'loopback');
  assert.is(cls('[::1]'), 'loopback');
  assert.is(cls('0:0:0:0:0:0:0:1'), 'loopback');
  assert.is(cls('::'), 'unspecified');
  assert.is(cls('::ffff:127.0.0.1'), 'loopback');
  assert.is(cls('[::ffff:7f00:1]'), 'loopback');
  assert.is(cls('::ffff:10.1.2.3'), 'private');
  assert.is(cls('::127.0.0.1'), 'loopback'); // IPv4-compatible (deprecated)
  assert.is(cls('64:ff9b::169.254.169.254'), 'metadata'); // NAT64
  assert.is(cls('2002:c0a8:0101::1'), 'private'); // 6to4 of 192.168.1.1
  assert.is(cls('2001:0:4136:e378:8000:63bf:3fff:fdd2'), 'reserved'); // Teredo
  assert.is(cls('fd00:ec2::254'), 'metadata');
  assert.is(cls('fc00::1'), 'private');
  assert.is(cls('fe80::1'), 'link-local');
  assert.is(cls('ff02::1'), 'multicast');
  assert.is(cls('2001:db8::1'), 'documentation');
  assert.is(cls('2606:4700:4700::1111'), 'global');
  assert.is(parseAddress('fe80::1%eth0'), undefined, 'zone ids are not accepted');
  assert.is(formatAddress(parseAddress('[::ffff:127.0.0.1]')!), '0:0:0:0:0:ffff:7f00:1');
});

test('IPv4 ranges: loopback, private, link-local, metadata, shared, reserved, global', () => {
  assert.is(cls('127.255.0.9'), 'loopback');
  for (const a of ['10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.0.1']) assert.is(cls(a), 'private', a);
  assert.is(cls('172.32.0.1'), 'global');
  assert.is(cls('169.254.1.1'), 'link-local');
  for (const a of ['169.254.169.254', '100.100.100.200', '192.0.0.192', '169.254.170.2']) assert.is(cls(a), 'metadata', a);
  assert.is(cls('100.64.0.1'), 'shared');
  assert.is(cls('0.0.0.0'), 'unspecified');
  assert.is(cls('0'), 'unspecified');
  assert.is(cls('255.255.255.255'), 'broadcast');
  assert.is(cls('224.0.0.1'), 'multicast');
  assert.is(cls('240.0.0.1'), 'reserved');
  assert.is(cls('198.18.0.1'), 'reserved');
  assert.is(cls('8.8.8.8'), 'global');
  assert.is(cls('93.184.216.34'), 'global');
});

test('local host names are recognised in any case and with a trailing dot', () => {
  for (const h of ['localhost', 'LOCALHOST', 'localhost.', 'a.b.localhost', 'metadata.google.internal', 'ip6-localhost']) {
    assert.ok(isLocalHostName(h), h);
  }
  assert.not.ok(isLocalHostName('example.com'));
  assert.not.ok(isLocalHostName('localhost.example.com'));
});

test('checkUrlForm refuses schemes, credentials and loopback in every spelling without any network', () => {
  const code = (u: string) => {
    try {
      checkUrlForm(u);
      return 'accepted';
    } catch (e) {
      return (e as { code?: string }).code;
    }
  };
  assert.is(code('file:///etc/passwd'), 'URL_SCHEME');
  assert.is(code('ftp://example.com/a.png'), 'URL_SCHEME');
  assert.is(code('data:image/png;base64,iVBORw0KGgo='), 'URL_SCHEME');
  assert.is(code('javascript:alert(1)'), 'URL_SCHEME');
  assert.is(code('not a url'), 'URL_INVALID');
  assert.is(code('http://user:pw@example.com/a.png'), 'URL_CREDENTIALS');
  for (const u of [
    'http://127.0.0.1/', 'http://localhost/', 'http://LocalHost./x', 'http://[::1]/', 'http://2130706433/', 'http://0x7f.0.0.1/',
    'http://[::ffff:127.0.0.1]/', 'http://0177.0.0.1/', 'http://127.1/', 'https://[::ffff:7f00:1]:8443/', 'http://0/',
    'http://169.254.169.254/latest/meta-data/', 'http://[fd00:ec2::254]/', 'http://10.0.0.1/', 'http://192.168.1.1/',
    'http://metadata.google.internal/computeMetadata/v1/', 'http://[fe80::1]/', 'http://0x0a000001/',
  ]) {
    assert.is(code(u), 'URL_ADDRESS_REFUSED', u);
  }
  assert.is(code('https://example.com/a.png'), 'accepted');
  assert.is(checkUrlForm('http://2130706433:8080/a.png', ['127.0.0.1:8080']).hostname, '127.0.0.1', 'allowlisted host:port passes in any spelling');
  assert.is(code('http://127.0.0.1:9/a.png'), 'URL_ADDRESS_REFUSED');
});

test.run();
