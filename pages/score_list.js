// A patient's score rows and their "Show more" button as one element. The rows live in the `state`
// prop; a pushed score changes it in place through `insert`/`put` (one small message per page)
// instead of a re-sent element. Values are shown by interpolation, never as HTML.
// `insert` and `put` are called only on the raw path that pages/score_list.py gates on the NiceGUI
// version (getElement() and the echart's update_chart() are NiceGUI's); otherwise `state` arrives
// through ordinary element updates.
export default {
  template: `
    <div>
      <div class="nicegui-column w-full gap-0" data-testid="score-list">
        <div v-for="row in state.rows" :key="row.id" class="pt-list-row" :class="{ 'pt-error': row.error }">
          <div class="text-sm">{{ row.date }}</div>
          <div class="nicegui-column gap-0">
            <div class="text-sm font-medium">{{ row.measure }}</div>
            <div class="text-xs ot-muted">{{ row.sub }}</div>
          </div>
          <div class="pt-val font-semibold text-right">{{ row.value }}</div>
          <q-btn v-if="row.markable" flat round color="grey-7" icon="block" class="ot-small"
                 aria-label="Mark entered in error" @click="$emit('mark', row.id)">
            <q-tooltip>Mark entered in error</q-tooltip>
          </q-btn>
          <span v-else></span>
        </div>
      </div>
      <q-btn v-if="state.more" flat color="primary" :label="state.more" @click="$emit('more')" />
    </div>`,
  props: {
    state: Object,
  },
  methods: {
    // The server made the same change to its copy of `state`; a reload shows the same rows.
    // A new score: its row at `index` (null when it falls under "Show more"), its chart point.
    insert(index, row, dropLast, more, chart) {
      const rows = this.state.rows;
      if (index !== null) rows.splice(index, 0, row);
      if (dropLast) rows.pop();
      this.state.more = more;
      if (chart) {
        const element = getElement(chart.id);
        if (element) {
          element.options.series[0].data.splice(chart.index, 0, chart.point);
          element.update_chart();
        }
      }
    },
    put(index, row) {
      this.state.rows.splice(index, 1, row);
    },
  },
};
