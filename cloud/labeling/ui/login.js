// Log in with the token; the server answers with a session cookie, then the app loads.
const form = document.getElementById('login-form');
const err = document.getElementById('login-error');
document.getElementById('worker').value = localStorage.getItem('loupe.worker') || '';
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  err.textContent = '';
  const token = document.getElementById('token').value;
  const worker = document.getElementById('worker').value.trim();
  const res = await fetch('/api/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token, worker }),
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    err.textContent = body.error || `login failed (${res.status})`;
    return;
  }
  localStorage.setItem('loupe.worker', worker);
  location.href = '/';
});
