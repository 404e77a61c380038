// 清屏 and 加载历史 for the chat toolbar and the top of the timeline.
import { ref } from "vue";
import { ElMessage, ElMessageBox } from "element-plus";
import { clearScreen, loadEarlier, restoreHistory, state } from "../conversation";
import { failure } from "../../api/errors";

export const historyBusy = ref(false);

/** Asks for confirmation, then clears the view (messages stay in the history). */
export async function confirmClear() {
  try {
    await ElMessageBox.confirm("清屏将清除当前聊天信息，会话记录不会删除，可点击“加载历史”恢复。确定清屏吗？", "清屏提示", {
      confirmButtonText: "确定清屏",
      cancelButtonText: "取消",
      type: "warning",
      customClass: "zn-clear-confirm",
    });
  } catch {
    return;
  }
  try {
    await clearScreen();
    ElMessage.success("已清屏");
  } catch (e) {
    ElMessage.error(failure(e).message);
  }
}

/** Brings back what 清屏 hid, or else loads earlier messages. */
export async function loadHistory() {
  if (historyBusy.value) return;
  historyBusy.value = true;
  try {
    const n = state.clearedThrough > 0n ? await restoreHistory() : await loadEarlier(20);
    if (n === 0) ElMessage.info("没有更早的聊天记录了");
  } catch (e) {
    ElMessage.error(failure(e).message);
  } finally {
    historyBusy.value = false;
  }
}
