// The demo host page: a stand-in for the e-invoice service platform (电子发票服务平台) that
// embeds the widget, with a demo-login switcher for local runs.
import "./host.css";

interface DemoIdentity {
  id: string;
  kind: string;
  label: string;
}

const menu = ["首页", "蓝字发票开具", "红字发票开具", "税务数字账户", "发票查询统计", "发票业务", "用票需求"];
const tiles = [
  ["蓝字发票开具", "立即开票、批量开具、扫码开票"],
  ["红字发票开具", "红字发票确认信息录入与处理"],
  ["税务数字账户", "发票查询、入账标识、用途确认"],
  ["发票额度调整", "申请调整发票总额度"],
  ["纳税人信息", "基础信息、资格信息维护"],
  ["我要办税", "申报缴税、证明开具"],
];

const root = document.getElementById("host")!;
root.innerHTML = `
  <header class="h-top">
    <div class="h-brand"><span class="h-emblem" aria-hidden="true">税</span>
      <div><strong>电子发票服务平台</strong><small>国家税务总局山东省税务局（演示页面）</small></div></div>
    <div class="h-user">
      <label for="demo-user">演示登录</label>
      <select id="demo-user" data-testid="demo-user"></select>
    </div>
  </header>
  <nav class="h-menu" aria-label="主菜单">${menu.map((m, i) => `<a href="#" class="${i === 0 ? "on" : ""}">${m}</a>`).join("")}</nav>
  <main class="h-main">
    <section class="h-notice"><strong>通知公告</strong><span>关于全面推广应用数字化电子发票的公告 · 系统将于每日 00:00-02:00 进行维护</span></section>
    <section class="h-tiles">${tiles.map(([t, d]) => `<a href="#" class="h-tile"><strong>${t}</strong><span>${d}</span></a>`).join("")}</section>
    <p class="h-hint">遇到问题？点击右下角 <b>征纳互动</b> 图标咨询智能客服或人工坐席。</p>
  </main>`;

const select = document.getElementById("demo-user") as HTMLSelectElement;
fetch("/dev/identities")
  .then((r) => (r.ok ? r.json() : []))
  .then((ids: DemoIdentity[]) => {
    const current = localStorage.getItem("zhengna.devUser") || "taxpayer-jinan";
    for (const id of ids.filter((x) => x.kind === "taxpayer")) {
      const o = document.createElement("option");
      o.value = id.id;
      o.textContent = id.label;
      o.selected = id.id === current;
      select.appendChild(o);
    }
    if (!ids.length) select.parentElement!.style.display = "none";
  })
  .catch(() => (select.parentElement!.style.display = "none"));
select.addEventListener("change", () => {
  localStorage.setItem("zhengna.devUser", select.value);
  localStorage.removeItem("zhengna.token");
  location.reload();
});
