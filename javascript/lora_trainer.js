// LoRA Trainer: hover hints on the tab's controls, the training progress in the window title, and a
// notification (the browser's, and the WebUI's notification.mp3) when a run finishes or fails.
// The WebUI loads every javascript/*.js of an extension; the standalone server runs this file at page load.
// Plain script, no build step. Hints are English keys of localizations/zh_CN.json, shown in the WebUI's language.
(function() {
    "use strict";
    if (window.loraTrainerScript) return;   // loaded once per page
    window.loraTrainerScript = true;

    // elem_id -> hint (as the WebUI's own hints.js, but by element, so a translated label still gets its hint)
    const TAB_HINTS = [   // the sub-tabs' buttons, in order (they have no ids of their own on gradio 3.41)
        "The folders of training images, the concepts found in them and the step maths.",
        "Settings, Start and Stop, and the run's progress, loss curve and previews.",
        "Read a finished run's loss curve, compare its epochs in a grid and keep the best one.",
    ];
    const HINTS = {
        lora_trainer_scan: "Read the training and regularization folders again and redraw the step maths.",
        lora_trainer_apply_preset: "Fill the settings from your preset, for what you train and for your graphics card; the message lists what changed.",
        lora_trainer_save_preset: "Keep the form's settings under this name (paths and names are left out).",
        lora_trainer_delete_preset: "Delete the preset chosen in 'Your presets'; the built-in presets stay.",
        lora_trainer_refresh_models: "Read the WebUI's checkpoint list again.",
        lora_trainer_start: "Check the settings and the images, then train (or wait in the queue behind the run that trains).",
        lora_trainer_stop: "Stop the run after the current step; it saves an -interrupted file and state to resume from.",
        lora_trainer_cancel: "Stop the run shown in 'Show run', or take it out of the queue if it has not started.",
        lora_trainer_remove: "Take a finished, stopped or failed run off the list; its files stay on disk.",
        lora_trainer_save: "Download the settings as a TOML file that kohya's sd-scripts and this trainer read.",
        lora_trainer_preview_weight: "The LoRA's weight in the preview prompts, as in <lora:name:weight>.",
        lora_trainer_confirm_overwrite: "Files of an earlier run with this output name are replaced when this one saves.",
        lora_trainer_eval_refresh: "Read the runs again (also done whenever this sub-tab is chosen).",
        lora_trainer_eval_analyse: "Read the run's log and files: loss curve, findings, diagnosis, and a grid to render.",
        lora_trainer_eval_validate: "The loss of every saved epoch on images it did not train on (or on the training images).",
        lora_trainer_eval_render: "Render every epoch at every weight through the WebUI, then score the pictures.",
        lora_trainer_eval_stop: "Stop the grid after the image being rendered.",
        lora_trainer_eval_cfg: "How closely the pictures follow the prompt (7 is the usual).",
        lora_trainer_eval_keep: "Copy the chosen epoch under its final name, with its card image, trigger word and weight.",
        lora_trainer_eval_keep_weight: "The weight the Lora tab's card puts in the prompt.",
        lora_trainer_eval_overwrite: "Allow keeping the epoch under a name a file already has.",
        lora_trainer_eval_plan: "List what 'Delete' would remove; nothing is deleted yet.",
        lora_trainer_eval_delete: "Delete the files listed above; the kept file is never among them.",
    };
    const ACTIVE = ["queued", "preparing", "training", "stopping"];
    const ENDED = ["finished", "failed"];   // a run the user stopped is no news

    function app() {
        return typeof gradioApp === "function" ? gradioApp() : document;
    }

    function option(name, fallback) {   // the WebUI's settings (none in the standalone server)
        return typeof opts === "object" && opts && opts[name] !== undefined ? opts[name] : fallback;
    }

    function translated(text) {
        return (window.localization && window.localization[text]) || text;
    }

    function setHint(element, hint) {
        const text = translated(hint);
        if (element && element.title !== text) element.title = text;
    }

    function addHints(root) {
        for (const [id, hint] of Object.entries(HINTS)) setHint(root.querySelector("#" + id), hint);
        const tabs = root.querySelectorAll("#lora_trainer_tabs > .tab-nav > button");
        TAB_HINTS.forEach((hint, index) => setHint(tabs[index], hint));
    }

    // the window title while a run trains, restored afterwards: "[LoRA 37%] Stable Diffusion"
    let ownTitle = null;
    let titleBefore = null;

    function showProgress(status) {
        const active = status && ACTIVE.includes(status.dataset.status) && option("show_progress_in_title", true);
        if (active) {
            const total = Number(status.dataset.total) || 0;
            const percent = total ? Math.floor(100 * Number(status.dataset.step || 0) / total) : 0;
            if (document.title !== ownTitle) titleBefore = document.title;
            ownTitle = `[LoRA ${percent}%] ${titleBefore}`;
            document.title = ownTitle;
        } else if (ownTitle !== null) {
            if (document.title === ownTitle) document.title = titleBefore;
            ownTitle = null;
        }
    }

    // a notification when a run this page saw queued or training ends (the progress box and the queue's rows
    // say each run's status: the box moves on to the next run of a queue at once); what the page saw is kept
    // in the browser tab's session, so a run that ends while the page reloads still gets its notification
    const SEEN_KEY = "lora_trainer_seen_status";
    const lastStatus = readSeen();

    function readSeen() {
        try {
            return JSON.parse(window.sessionStorage.getItem(SEEN_KEY)) || {};
        } catch (error) {   // storage disabled or unreadable: this page's own memory only
            return {};
        }
    }

    function remember(job, now) {
        if (lastStatus[job] === now) return;
        delete lastStatus[job];   // newest last, so the oldest are dropped first
        lastStatus[job] = now;
        const jobs = Object.keys(lastStatus);
        jobs.slice(0, Math.max(0, jobs.length - 100)).forEach(old => delete lastStatus[old]);
        try {
            window.sessionStorage.setItem(SEEN_KEY, JSON.stringify(lastStatus));
        } catch (error) { /* storage full or disabled */ }
    }

    function notify(status) {
        const job = status.dataset.job;
        const now = status.dataset.status;
        const before = lastStatus[job];
        remember(job, now);
        if (!before || !ACTIVE.includes(before) || !ENDED.includes(now)) return;
        const badge = status.querySelector(".lt-badge");
        const name = status.querySelector(".lt-name") || status.querySelector("td");   // the box, or a queue row
        const text = `${name ? name.textContent : ""}: ${badge ? badge.textContent : now}`;
        const audio = app().querySelector("#audio_notification audio");   // the WebUI's notification.mp3
        if (audio && option("lora_trainer_notify_sound", true)) {
            audio.volume = option("notification_volume", 100) / 100.0;
            audio.play();
        }
        if (option("lora_trainer_notify_browser", true) && "Notification" in window &&
                Notification.permission === "granted" && !document.hasFocus()) {
            const notification = new Notification(translated("LoRA Trainer"), {body: text});
            notification.onclick = function() {
                parent.focus();
                this.close();
            };
        }
    }

    function update() {
        const root = app();
        addHints(root);
        const status = root.querySelector("#lora_trainer_progress .lt-status[data-job]");
        showProgress(status);
        const seen = new Set();
        for (const run of root.querySelectorAll("#lora_trainer_progress [data-job], #lora_trainer_queue [data-job]")) {
            if (run.dataset.job && !seen.has(run.dataset.job)) {
                seen.add(run.dataset.job);
                notify(run);
            }
        }
    }

    let timer = null;

    function soon() {
        clearTimeout(timer);
        timer = setTimeout(update, 200);
    }

    function start() {
        new MutationObserver(soon).observe(document.body, {childList: true, subtree: true, characterData: true});
        document.addEventListener("click", function(event) {   // a click allows the browser to ask for permission
            if (event.target && event.target.id === "lora_trainer_start" && "Notification" in window &&
                    Notification.permission === "default" && option("lora_trainer_notify_browser", true)) {
                Notification.requestPermission();
            }
        }, true);
        soon();
    }

    if (document.body) start();
    else document.addEventListener("DOMContentLoaded", start);
})();
