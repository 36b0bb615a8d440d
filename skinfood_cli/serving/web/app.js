// skinfood web page: choose or take a photo, send it to the same-origin
// skinfood API, and show the answer. Plain JS, no dependencies.
//
// Privacy: the photo is only ever sent to this server (/v1/...). It is kept
// in memory (so a language switch can re-ask) and never written to storage.
// Everything the server returns is inserted with textContent, never innerHTML.
'use strict';

(() => {
  const STRINGS = {
    en: {
      subtitle: 'Photo check for skin conditions — not a diagnosis',
      pickHeading: 'Your photo',
      takePhoto: 'Take a photo',
      choosePhoto: 'Choose a photo',
      photoHint: 'Use good light and fill the frame with the skin area, in focus.',
      privacy: 'Your photo goes only to this skinfood server. This page does not keep it.',
      previewAlt: 'The photo you chose',
      busyPredict: 'Analysing…',
      busyExplain: 'Looking at where the model looked…',
      tryAgain: 'Try again',
      tokenLabel: 'Access token',
      tokenHint: 'The server printed an address ending in #token=… — enter the part after "token=".',
      save: 'Save',
      mostLikely: 'Most likely',
      confidenceCaption: 'how sure the model is',
      uncertain: 'The model is not sure',
      qualityHint: 'Photo quality: {problems}. A retake in daylight, in focus and from closer usually gives a better answer.',
      quality_dark: 'too dark',
      quality_blurred: 'blurred',
      quality_small: 'too small',
      quality_compressed: 'heavily compressed',
      outOfScope: 'This does not look like a photo of a skin condition this model was trained on.',
      closest: 'Closest known condition: {name} ({pct}). This is not an answer.',
      alternatives: 'Other possibilities',
      about: 'About this condition',
      whatToDo: 'What to do',
      urgency_routine: 'routine',
      urgency_soon: 'see a doctor soon',
      urgency_urgent: 'urgent: see a doctor promptly',
      notDiagnosis: 'Not a diagnosis: skinfood is not a medical device. See a doctor about any skin change that worries you.',
      explain: 'Where did the model look?',
      heatmapAlt: 'Heatmap of where the model looked, beside your photo',
      heatmapCaption: 'Warmer colours show the areas that most influenced the model. It is not a map of the disease.',
      footerNote: 'Not a diagnosis — see a doctor about any skin change that worries you.',
      announce: 'Result: {name}, {pct}.',
      errTooLarge: 'That photo is too large. Try a smaller photo.',
      errNotPhoto: 'That file is not a photo (choose a JPEG, PNG, WebP …).',
      errUnreadable: 'The photo could not be read. The file may be damaged.',
      errBusy: 'The server is busy. Try again in a moment.',
      errTimeout: 'That took too long. Try again.',
      errNetwork: 'Cannot reach the skinfood server. Check the connection and that the server is running.',
      errUnauthorized: 'This server needs an access token. Enter it below.',
      errHeatmap: 'The picture could not be shown.',
      errServer: 'Server error (HTTP {status})',
    },
    ko: {
      subtitle: '피부 상태 사진 확인 — 진단이 아닙니다',
      pickHeading: '사진',
      takePhoto: '사진 찍기',
      choosePhoto: '사진 선택',
      photoHint: '밝은 곳에서 피부 부위가 화면을 채우도록 초점을 맞춰 찍으세요.',
      privacy: '사진은 이 skinfood 서버로만 전송되며, 이 페이지는 사진을 보관하지 않습니다.',
      previewAlt: '선택한 사진',
      busyPredict: '분석 중…',
      busyExplain: '모델이 본 곳을 확인하는 중…',
      tryAgain: '다시 시도',
      tokenLabel: '접속 토큰',
      tokenHint: '서버가 출력한 주소의 #token=… 뒤에 있는 값을 입력하세요.',
      save: '저장',
      mostLikely: '가장 가능성 높은 상태',
      confidenceCaption: '모델의 확신 정도',
      uncertain: '모델이 확신하지 못합니다',
      qualityHint: '사진 품질: {problems}. 밝은 곳에서 초점을 맞춰 더 가까이 다시 찍으면 보통 더 나은 답을 얻습니다.',
      quality_dark: '너무 어두움',
      quality_blurred: '흐림',
      quality_small: '너무 작음',
      quality_compressed: '압축이 심함',
      outOfScope: '이 사진은 이 모델이 학습한 피부 질환 사진으로 보이지 않습니다.',
      closest: '가장 가까운 학습된 질환: {name} ({pct}). 답이 아닙니다.',
      alternatives: '다른 가능성',
      about: '이 상태에 대하여',
      whatToDo: '어떻게 해야 하나요',
      urgency_routine: '일반',
      urgency_soon: '곧 진료를 받으세요',
      urgency_urgent: '긴급: 빨리 진료를 받으세요',
      notDiagnosis: '진단이 아닙니다: skinfood는 의료기기가 아닙니다. 걱정되는 피부 변화는 의사와 상담하세요.',
      explain: '모델이 본 곳',
      heatmapAlt: '모델이 본 곳을 나타낸 히트맵과 사진',
      heatmapCaption: '따뜻한 색일수록 모델의 판단에 크게 영향을 준 부분입니다. 질병 부위를 나타내는 지도는 아닙니다.',
      footerNote: '진단이 아닙니다 — 걱정되는 피부 변화는 의사와 상담하세요.',
      announce: '결과: {name}, {pct}.',
      errTooLarge: '사진이 너무 큽니다. 더 작은 사진을 사용하세요.',
      errNotPhoto: '사진 파일이 아닙니다 (JPEG, PNG, WebP 등을 선택하세요).',
      errUnreadable: '사진을 읽을 수 없습니다. 파일이 손상되었을 수 있습니다.',
      errBusy: '서버가 바쁩니다. 잠시 후 다시 시도하세요.',
      errTimeout: '시간이 너무 오래 걸렸습니다. 다시 시도하세요.',
      errNetwork: 'skinfood 서버에 연결할 수 없습니다. 연결 상태와 서버 실행 여부를 확인하세요.',
      errUnauthorized: '이 서버는 접속 토큰이 필요합니다. 아래에 입력하세요.',
      errHeatmap: '그림을 표시할 수 없습니다.',
      errServer: '서버 오류 (HTTP {status})',
    },
  };

  // Page-side wording for common HTTP statuses (0 = the request never arrived).
  const STATUS_TEXT = {
    0: 'errNetwork', 401: 'errUnauthorized', 413: 'errTooLarge', 415: 'errNotPhoto',
    422: 'errUnreadable', 503: 'errBusy', 504: 'errTimeout',
  };
  const RETRYABLE = new Set([0, 500, 502, 503, 504]);
  // Photos are shrunk here before upload: a 12-megapixel phone photo is 3-5 MB,
  // slow on Wi-Fi, and the model sees a few hundred pixels (the explain picture at most 1024).
  const MAX_SIDE = 1600;
  const JPEG_QUALITY = 0.9;
  const URGENCIES = ['routine', 'soon', 'urgent'];

  const $ = (id) => document.getElementById(id);
  const els = {
    fileInput: $('file'), cameraInput: $('camera'), preview: $('preview'),
    takePhoto: $('take-photo'), choosePhoto: $('choose-photo'),
    busy: $('busy'), busyText: $('busy-text'),
    error: $('error'), errorTitle: $('error-title'), errorDetail: $('error-detail'), retry: $('retry'),
    tokenForm: $('token-form'), tokenInput: $('token-input'),
    announce: $('announce'),
    result: $('result'), diseaseName: $('disease-name'), confidence: $('confidence'),
    confidenceBar: $('confidence-bar'), uncertain: $('uncertain'), qualityHint: $('quality-hint'),
    mostLikely: $('most-likely'), closest: $('closest'), confidenceBlock: $('confidence-block'),
    alternativesBlock: $('alternatives-block'), alternatives: $('alternatives'),
    descriptionBlock: $('description-block'), description: $('description'),
    todoBlock: $('todo-block'), urgency: $('urgency'), advice: $('advice'),
    explain: $('explain'), heatmapFigure: $('heatmap-figure'), heatmap: $('heatmap'), heatmapLink: $('heatmap-link'),
    langEn: $('lang-en'), langKo: $('lang-ko'),
  };

  // localStorage can throw (private mode, disabled storage): never let it break the page.
  const storage = {
    get(key) { try { return localStorage.getItem(key); } catch (e) { return null; } },
    set(key, value) { try { localStorage.setItem(key, value); } catch (e) { /* ignore */ } },
  };

  let lang = 'en';
  let token = storage.get('skinfood.token') || '';
  let currentFile = null;   // the chosen File, in memory only
  let previewUrl = null;    // object URLs, revoked when replaced
  let heatmapUrl = null;
  let lastResult = null;    // last prediction JSON (re-rendered on language switch)
  let lastError = null;     // last ApiError shown (re-worded on language switch)
  let lastAction = null;    // the last API task, for "Try again" and after a token is saved

  class ApiError extends Error {
    constructor(status, code, serverMessage) {
      super(serverMessage || code || `HTTP ${status}`);
      this.status = status;
      this.code = code || '';
      this.serverMessage = serverMessage || '';
    }
  }

  const t = (key) => STRINGS[lang][key];
  const fill = (text, vars) => text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));

  function setState(state) { document.body.dataset.state = state; }

  // ---- language -------------------------------------------------------------

  function applyLanguage(newLang) {
    lang = STRINGS[newLang] ? newLang : 'en';
    document.documentElement.lang = lang;
    document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll('[data-i18n-alt]').forEach((el) => { el.alt = t(el.dataset.i18nAlt); });
    els.langEn.setAttribute('aria-pressed', String(lang === 'en'));
    els.langKo.setAttribute('aria-pressed', String(lang === 'ko'));
    if (lastResult) renderResult(lastResult);
    if (lastError) renderError(lastError);
  }

  function switchLanguage(newLang) {
    if (newLang === lang) return;
    storage.set('skinfood.lang', newLang);
    applyLanguage(newLang);
    // Re-ask the server so the condition name and description come back in
    // the new language (and redraw the heatmap if one was showing).
    if (currentFile && !els.result.hidden) {
      const hadHeatmap = !els.heatmapFigure.hidden;
      runTask(async () => {
        await predict();
        if (hadHeatmap) await explain();
      }, 'busyPredict');
    }
  }

  function initialLanguage() {
    const saved = storage.get('skinfood.lang');
    if (saved && STRINGS[saved]) return saved;
    return (navigator.language || '').toLowerCase().startsWith('ko') ? 'ko' : 'en';
  }

  // ---- token ----------------------------------------------------------------

  // The server prints http://host:port/#token=abc for phones: keep the token,
  // then take it out of the address bar (and history).
  function takeTokenFromHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    const fromHash = params.get('token');
    if (!fromHash) return;
    token = fromHash;
    storage.set('skinfood.token', token);
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  }

  function onTokenSubmit(event) {
    event.preventDefault();
    const value = els.tokenInput.value.trim();
    if (!value) return;
    token = value;
    storage.set('skinfood.token', token);
    els.tokenInput.value = '';
    els.tokenForm.hidden = true;
    if (lastAction) lastAction();
  }

  // ---- API ------------------------------------------------------------------

  // POST the current photo as multipart field "file"; throws ApiError on failure.
  async function postPhoto(url, accept) {
    const form = new FormData();
    form.append('file', currentFile, currentFile.name || 'photo.jpg');
    const headers = { Accept: accept };
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(url, {
        method: 'POST', body: form, headers,
        cache: 'no-store', credentials: 'same-origin', referrerPolicy: 'no-referrer',
      });
    } catch (e) {
      throw new ApiError(0, 'network', '');
    }
    if (!response.ok) throw await errorFromResponse(response);
    return response;
  }

  // Error bodies look like {"error": {"code": "...", "message": "..."}}; anything
  // else (HTML from a proxy, FastAPI's {"detail": ...}) is handled gracefully.
  async function errorFromResponse(response) {
    let code = '';
    let message = '';
    try {
      const body = await response.json();
      if (body && typeof body.error === 'object' && body.error) {
        code = String(body.error.code || '');
        message = String(body.error.message || '');
      } else if (body && typeof body.error === 'string') {
        message = body.error;
      } else if (body && typeof body.detail === 'string') {
        message = body.detail;
      }
    } catch (e) { /* not JSON */ }
    return new ApiError(response.status, code, message);
  }

  async function predict() {
    const url = `/v1/predict?lang=${encodeURIComponent(lang)}&top_k=3`;
    const response = await postPhoto(url, 'application/json');
    let data;
    try {
      data = await response.json();
    } catch (e) {
      throw new ApiError(response.status, 'bad_json', '');
    }
    if (data && data.error) {
      const err = typeof data.error === 'object' ? data.error : { message: String(data.error) };
      throw new ApiError(response.status, err.code, err.message);
    }
    renderResult(data);
    els.announce.textContent = data.in_scope === false ? t('outOfScope') : fill(t('announce'), {
      name: data.disease_name || data.label || '', pct: percent(data.confidence),
    });
  }

  async function explain() {
    const url = `/v1/explain?lang=${encodeURIComponent(lang)}`;
    const response = await postPhoto(url, 'image/png');
    const blob = await response.blob();
    clearHeatmap();
    heatmapUrl = URL.createObjectURL(blob);
    els.heatmap.src = heatmapUrl;
    els.heatmapLink.href = heatmapUrl;   // tap for the full-size picture (its caption is small on a phone)
    els.heatmapFigure.hidden = false;
    try {
      await els.heatmap.decode();   // so state "result" means the picture is there
    } catch (e) {
      clearHeatmap();
      throw new ApiError(response.status, 'bad_image', t('errHeatmap'));
    }
  }

  // Run one API task with the busy state, the error box and the body state.
  async function runTask(task, busyKey) {
    lastAction = () => runTask(task, busyKey);
    hideError();
    els.tokenForm.hidden = true;   // shown again if the server still says 401
    setBusy(true, busyKey);
    let failure = null;
    try {
      await task();
    } catch (err) {
      failure = err instanceof ApiError ? err : new ApiError(0, 'client', String(err && err.message));
    }
    setBusy(false);
    if (failure) {
      showError(failure);
    } else {
      setState(els.result.hidden ? 'idle' : 'result');
    }
  }

  function setBusy(busy, busyKey) {
    document.querySelectorAll('button').forEach((b) => { b.disabled = busy; });
    els.busy.hidden = !busy;
    if (busy) {
      els.busyText.dataset.i18n = busyKey || 'busyPredict';
      els.busyText.textContent = t(els.busyText.dataset.i18n);
      setState('busy');
    }
    document.body.setAttribute('aria-busy', String(busy));
  }

  // ---- photo ----------------------------------------------------------------

  // The photo to upload: `file` itself when its longest side is <= MAX_SIDE (the
  // server applies its EXIF orientation), else a JPEG of it at MAX_SIDE, drawn
  // upright ('from-image' applies the EXIF orientation before scaling). A photo
  // this browser can't decode (HEIC outside Safari) goes as it is: the server reads it.
  async function preparePhoto(file) {
    if (typeof createImageBitmap !== 'function') return file;
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
    } catch (e) {
      return file;
    }
    try {
      const scale = MAX_SIDE / Math.max(bitmap.width, bitmap.height);
      if (scale >= 1) return file;
      const canvas = document.createElement('canvas');
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      const context = canvas.getContext('2d');
      context.imageSmoothingQuality = 'high';
      context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', JPEG_QUALITY));
      if (!blob) return file;
      const name = `${(file.name || 'photo').replace(/\.[^.]*$/, '')}.jpg`;
      return new File([blob], name, { type: 'image/jpeg' });
    } finally {
      bitmap.close();
    }
  }

  function onFileChosen(event) {
    const input = event.target;
    const file = input.files && input.files[0];
    input.value = '';   // so choosing the same photo again still fires "change"
    if (!file) return;

    clearResult();
    hideError();
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    els.preview.hidden = true;
    els.preview.removeAttribute('src');

    // Not a photo: say so without sending anything.
    if (file.type && !file.type.startsWith('image/')) {
      currentFile = null;
      lastAction = null;
      showError(new ApiError(415, 'unsupported_media_type', ''));
      return;
    }

    currentFile = null;
    previewUrl = URL.createObjectURL(file);
    els.preview.src = previewUrl;
    els.preview.hidden = false;
    runTask(async () => {
      currentFile = await preparePhoto(file);
      await predict();
    }, 'busyPredict').then(() => {
      if (!els.result.hidden) {
        els.diseaseName.focus({ preventScroll: true });
        els.result.scrollIntoView({ behavior: 'smooth', block: 'start' });
      }
    });
  }

  // ---- rendering ------------------------------------------------------------

  function percent(p) {
    if (typeof p !== 'number' || !Number.isFinite(p)) return '–';
    const rounded = Math.round(p * 100);
    if (rounded === 0 && p > 0) return '<1%';
    return `${rounded}%`;
  }

  function barWidth(p) {
    const v = typeof p === 'number' && Number.isFinite(p) ? Math.min(Math.max(p, 0), 1) : 0;
    return `${(v * 100).toFixed(1)}%`;
  }

  function renderResult(data) {
    lastResult = data;
    els.diseaseName.textContent = data.disease_name || data.label || '?';
    els.confidence.textContent = percent(data.confidence);
    els.confidenceBar.style.width = barWidth(data.confidence);
    els.uncertain.hidden = !data.uncertain;

    // Photo-quality hints (too dark, blurred, ...): one line advising a retake, shown in or out of scope.
    const problems = (Array.isArray(data.quality) ? data.quality : [])
      .map((code) => STRINGS[lang][`quality_${code}`] || code);
    els.qualityHint.textContent = problems.length ? fill(t('qualityHint'), { problems: problems.join(', ') }) : '';
    els.qualityHint.hidden = problems.length === 0;

    // Alternatives: the rest of top_k (everything but the top answer).
    const alternatives = (Array.isArray(data.top_k) ? data.top_k : [])
      .filter((item) => item && item.label !== data.label);
    els.alternatives.replaceChildren(...alternatives.map(alternativeItem));
    els.alternativesBlock.hidden = alternatives.length === 0;

    els.description.textContent = data.description || '';
    els.descriptionBlock.hidden = !data.description;

    const urgency = URGENCIES.includes(data.urgency) ? data.urgency : null;
    els.urgency.hidden = !urgency;
    els.urgency.className = urgency ? `badge badge-${urgency}` : 'badge';
    els.urgency.dataset.urgency = urgency || '';
    els.urgency.textContent = urgency ? t(`urgency_${urgency}`) : '';
    els.advice.textContent = data.advice || '';
    els.advice.hidden = !data.advice;
    els.todoBlock.hidden = !urgency && !data.advice;

    // Out of scope: the sentence takes the answer's place, and no condition is described.
    const outside = data.in_scope === false;
    els.mostLikely.hidden = outside;
    els.confidenceBlock.hidden = outside;
    els.closest.hidden = !outside;
    if (outside) {
      els.diseaseName.textContent = t('outOfScope');
      els.closest.textContent = fill(t('closest'), {
        name: data.disease_name || data.label || '?', pct: percent(data.confidence),
      });
      els.uncertain.hidden = true;
      els.alternativesBlock.hidden = true;
      els.descriptionBlock.hidden = true;
      els.todoBlock.hidden = true;
    }

    els.result.hidden = false;
  }

  // Create an element with a class and (text) content.
  function make(tag, className, text) {
    const el = document.createElement(tag);
    el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function alternativeItem(item) {
    const row = make('div', 'alt-row');
    row.append(make('span', 'alt-name', item.disease_name || item.label || '?'),
      make('span', 'pct', percent(item.probability)));
    const bar = make('div', 'bar bar-small');
    bar.setAttribute('aria-hidden', 'true');
    const fillEl = make('div', 'bar-fill');
    fillEl.style.width = barWidth(item.probability);
    bar.append(fillEl);
    const li = document.createElement('li');
    li.append(row, bar);
    return li;
  }

  function clearHeatmap() {
    if (heatmapUrl) URL.revokeObjectURL(heatmapUrl);
    heatmapUrl = null;
    els.heatmap.removeAttribute('src');
    els.heatmapLink.removeAttribute('href');
    els.heatmapFigure.hidden = true;
  }

  function clearResult() {
    lastResult = null;
    els.result.hidden = true;
    els.announce.textContent = '';
    clearHeatmap();
  }

  // ---- errors ---------------------------------------------------------------

  function showError(err) {
    lastError = err;
    els.error.hidden = false;
    renderError(err);
    els.error.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    if (err.status === 401) {
      els.tokenForm.hidden = false;
      els.tokenInput.focus();
    }
    setState('error');
  }

  // Friendly page wording for common statuses, with the server's own message
  // underneath; otherwise the server's message; otherwise "Server error (HTTP n)".
  function renderError(err) {
    const key = STATUS_TEXT[err.status];
    let title;
    let detail = '';
    if (key) {
      title = t(key);
      detail = err.serverMessage;
    } else if (err.serverMessage) {
      title = err.serverMessage;
    } else {
      title = fill(t('errServer'), { status: err.status });
    }
    els.errorTitle.textContent = title;
    els.errorDetail.textContent = detail;
    els.errorDetail.hidden = !detail;
    els.retry.hidden = !(lastAction && RETRYABLE.has(err.status));
  }

  function hideError() {
    lastError = null;
    els.error.hidden = true;
    els.errorTitle.textContent = '';
    els.errorDetail.textContent = '';
  }

  // ---- wiring ---------------------------------------------------------------

  takeTokenFromHash();
  applyLanguage(initialLanguage());

  els.takePhoto.addEventListener('click', () => els.cameraInput.click());
  els.choosePhoto.addEventListener('click', () => els.fileInput.click());
  els.fileInput.addEventListener('change', onFileChosen);
  els.cameraInput.addEventListener('change', onFileChosen);
  els.preview.addEventListener('error', () => { els.preview.hidden = true; });  // e.g. HEIC in Chrome
  els.langEn.addEventListener('click', () => switchLanguage('en'));
  els.langKo.addEventListener('click', () => switchLanguage('ko'));
  els.explain.addEventListener('click', () => { if (currentFile) runTask(explain, 'busyExplain'); });
  els.retry.addEventListener('click', () => { if (lastAction) lastAction(); });
  els.tokenForm.addEventListener('submit', onTokenSubmit);
  setState('idle');
})();
