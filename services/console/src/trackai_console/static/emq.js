// The EMQ chart: one bar per day, green at or above Meta's 6.0 line and red below it, with the
// line itself drawn across. Data comes from the page (#emq-dados), rendered by the server.
(function () {
  const data = JSON.parse(document.getElementById("emq-dados").textContent);
  const green = "#1a7f37";
  const red = "#cf222e";
  const colours = data.values.map((v) => (v !== null && v >= data.threshold ? green : red));
  new Chart(document.getElementById("emq-grafico"), {
    data: {
      labels: data.labels,
      datasets: [
        { type: "bar", label: "EMQ do dia", data: data.values, backgroundColor: colours },
        {
          type: "line",
          label: "Mínimo recomendado (" + data.threshold.toFixed(1).replace(".", ",") + ")",
          data: data.labels.map(() => data.threshold),
          borderColor: "#5b6478",
          borderDash: [6, 4],
          pointRadius: 0,
          fill: false,
        },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { y: { min: 0, max: 10, title: { display: true, text: "EMQ (0 a 10)" } } },
      // The bars' colour says above/below; the legend names only the line.
      plugins: {
        legend: { position: "bottom", labels: { filter: (item) => item.datasetIndex === 1 } },
      },
    },
  });
})();
