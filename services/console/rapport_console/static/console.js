// Draws every <canvas data-chart> with Chart.js, on load and after htmx swaps a part in.
(function () {
  "use strict";
  const palette = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#84cc16", "#ec4899"];

  function draw(canvas) {
    if (!window.Chart || window.Chart.getChart(canvas)) return;
    const spec = JSON.parse(canvas.dataset.chart);
    // Datasets on the left axis unless they name their own (drawn on the right).
    const scales = { y: { position: "left", beginAtZero: true } };
    spec.datasets.forEach(function (dataset, i) {
      const colour = palette[i % palette.length];
      dataset.borderColor = dataset.borderColor || colour;
      dataset.backgroundColor = dataset.backgroundColor || colour + "99";
      dataset.yAxisID = dataset.yAxisID || "y";
      if (!scales[dataset.yAxisID]) {
        scales[dataset.yAxisID] = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false } };
      }
    });
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: spec.datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: false, spanGaps: false, scales: scales },
    });
    canvas.dataset.drawn = "true";
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target); });
})();
