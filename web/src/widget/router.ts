import { createRouter, createWebHashHistory } from "vue-router";

// The widget frame shows the chat; the personal centre (个人中心, spec §2) opens in its own
// tab at widget.html#/center/...
export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: "/", name: "chat", component: () => import("./ChatView.vue") },
    {
      path: "/center",
      component: () => import("../center/CenterLayout.vue"),
      children: [
        { path: "", redirect: "/center/leave-messages" },
        { path: "leave-messages", name: "leave-messages", component: () => import("../center/LeaveMessages.vue") },
        { path: "leave-messages/:id", name: "leave-message", component: () => import("../center/LeaveMessageDetail.vue") },
        { path: "appointments", name: "appointments", component: () => import("../center/Appointments.vue") },
        { path: "appointments/:id", name: "appointment", component: () => import("../center/AppointmentDetail.vue") },
        { path: "notifications", name: "notifications", component: () => import("../center/Notifications.vue") },
        { path: "favourites", name: "favourites", component: () => import("../center/Favourites.vue") },
      ],
    },
  ],
});
