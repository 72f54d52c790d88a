// The live scoreboard page: a WebSocket subscriber that applies the seq/epoch rule, animates rank
// changes, and a small panel to register, log in and complete actions through the real API.
const $ = (id) => document.getElementById(id);
const CHANNEL = "scoreboard_updates";
const board = { epoch: null, seq: -1, top: [] };
let socket = null;
let attempt = 0;
let session = JSON.parse(sessionStorage.getItem("scoreboard.session") || "null");

function setConnection(state, text) {
  const el = $("connection");
  el.className = `state ${state}`;
  el.textContent = text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  setConnection("connecting", attempt ? "reconnecting…" : "connecting…");
  socket.onopen = () => {
    attempt = 0;
    const subscribe = { type: "subscribe", channel: CHANNEL };
    if (board.epoch !== null) subscribe.since = { epoch: board.epoch, seq: board.seq };
    socket.send(JSON.stringify(subscribe));
    setConnection("live", "live");
  };
  socket.onmessage = (event) => receive(JSON.parse(event.data));
  socket.onclose = () => {
    const delay = Math.min(15000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
    attempt += 1;
    setConnection("offline", `offline — retrying in ${Math.ceil(delay / 1000)}s`);
    setTimeout(connect, delay);
  };
}

// The seq rule: a snapshot or a new epoch is the truth; within an epoch only newer seqs apply.
function receive(message) {
  if (message.type === "error") { console.warn("scoreboard:", message.code, message.detail); return; }
  if (message.type !== "snapshot" && message.type !== "update") return;
  const newEpoch = message.epoch !== board.epoch;
  if (message.type === "update" && !newEpoch && message.seq <= board.seq) return;
  board.epoch = message.epoch;
  board.seq = message.seq;
  render(message.top);
}

function render(top) {
  const list = $("board");
  const before = new Map([...list.children].map((li) => [li.dataset.user, li.getBoundingClientRect().top]));
  const previous = new Map(board.top.map((e) => [e.user_id, e]));
  const rows = top.map((entry) => {
    let li = list.querySelector(`li[data-user="${CSS.escape(entry.user_id)}"]`);
    if (!li) {
      li = document.createElement("li");
      li.dataset.user = entry.user_id;
      li.innerHTML = '<span class="rank"></span><span class="name"></span><span class="score"></span>';
    }
    li.querySelector(".rank").textContent = entry.rank;
    li.querySelector(".name").textContent = entry.display_name;
    li.querySelector(".score").textContent = entry.score.toLocaleString();
    li.classList.toggle("me", session !== null && entry.user_id === session.userId);
    const old = previous.get(entry.user_id);
    li.classList.toggle("changed", !old || old.score !== entry.score);
    return li;
  });
  list.replaceChildren(...rows);
  for (const li of rows) {  // FLIP: start each row where it was, then let it glide to its new place
    const was = before.get(li.dataset.user);
    const delta = was === undefined ? 0 : was - li.getBoundingClientRect().top;
    if (delta) {
      li.style.transition = "none";
      li.style.transform = `translateY(${delta}px)`;
      requestAnimationFrame(() => { li.style.transition = ""; li.style.transform = ""; });
    }
  }
  announce(previous, top);
  board.top = top;
  $("empty").hidden = top.length > 0;
  $("board-meta").textContent = `epoch ${board.epoch} · update ${board.seq}`;
  if (session) refreshMine();
}

function announce(previous, top) {
  const leader = top[0];
  const oldLeader = board.top[0];
  if (leader && (!oldLeader || oldLeader.user_id !== leader.user_id)) {
    $("announcer").textContent = `${leader.display_name} takes the lead with ${leader.score}`;
  } else if (previous.size && top.some((e) => !previous.has(e.user_id))) {
    const entrant = top.find((e) => !previous.has(e.user_id));
    $("announcer").textContent = `${entrant.display_name} enters the top 10 at rank ${entrant.rank}`;
  }
}

async function api(path, body, auth = true) {
  const headers = { "Content-Type": "application/json" };
  if (auth && session) headers.Authorization = `Bearer ${session.accessToken}`;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body ?? {}), credentials: "omit" });
  if (response.status === 401 && auth && session && await refresh()) return api(path, body, auth);
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw Object.assign(new Error(data?.detail || response.statusText), { data, status: response.status });
  return data;
}

function remember(tokens, username) {
  const claims = JSON.parse(atob(tokens.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  session = { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, userId: claims.sub, username };
  sessionStorage.setItem("scoreboard.session", JSON.stringify(session));
  showSession();
}

async function refresh() {
  try {
    const tokens = await api("/api/auth/refresh", { refresh_token: session.refreshToken }, false);
    remember(tokens, session.username);
    return true;
  } catch { forget(); return false; }
}

function forget() {
  session = null;
  sessionStorage.removeItem("scoreboard.session");
  showSession();
}

function showSession() {
  $("auth-form").hidden = session !== null;
  $("session").hidden = session === null;
  if (session) { $("me").textContent = session.username; refreshMine(); }
}

async function refreshMine() {
  const response = await fetch(`/api/users/${session.userId}/score`);
  if (!response.ok) return;
  const mine = await response.json();
  $("my-score").textContent = mine.score.toLocaleString();
  $("my-rank").textContent = mine.rank ?? "–";
}

function say(text) { $("message").textContent = text; }

async function credentials(kind) {
  const username = $("username").value.trim();
  const password = $("password").value;
  try {
    if (kind === "register") await api("/api/auth/register", { username, password }, false);
    remember(await api("/api/auth/login", { username, password }, false), username);
    say(kind === "register" ? "Welcome! Complete an action to score." : "");
  } catch (error) { say(error.message); }
}

async function completeAction() {
  const button = $("complete");
  button.disabled = true;
  try {
    const ticket = await api("/api/actions", { type: "default" });
    const result = await api("/api/score/update", { user_id: session.userId, action_id: ticket.action_id });
    $("my-score").textContent = result.new_score.toLocaleString();
    $("my-rank").textContent = result.rank ?? "–";
    say(`+${ticket.points} — your score is ${result.new_score}`);
  } catch (error) { say(error.message); } finally { button.disabled = false; }
}

$("auth-form").addEventListener("submit", (event) => { event.preventDefault(); credentials("login"); });
$("register").addEventListener("click", () => credentials("register"));
$("complete").addEventListener("click", completeAction);
$("logout").addEventListener("click", async () => {
  try { await api("/api/auth/logout"); } catch { /* already gone */ }
  forget();
});
showSession();
connect();
