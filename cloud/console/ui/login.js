'use strict';
document.getElementById('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const res = await fetch('/api/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: document.getElementById('token').value }),
  });
  if (res.ok) location.href = '/';
  else document.getElementById('error').textContent = (await res.json().catch(() => ({}))).error || 'log in failed';
});
