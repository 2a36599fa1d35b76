// One score in a patient's list: the same markup the page built from seven NiceGUI elements,
// as one element. Values arrive as props and are shown by interpolation, never as HTML.
export default {
  template: `
    <div>
      <div class="text-sm">{{ date }}</div>
      <div class="nicegui-column gap-0">
        <div class="text-sm font-medium">{{ measure }}</div>
        <div class="text-xs ot-muted">{{ sub }}</div>
      </div>
      <div class="pt-val font-semibold text-right">{{ value }}</div>
      <q-btn v-if="markable" flat round color="grey-7" icon="block" class="ot-small"
             aria-label="Mark entered in error" @click="$emit('mark')">
        <q-tooltip>Mark entered in error</q-tooltip>
      </q-btn>
      <span v-else></span>
    </div>`,
  props: {
    date: String,
    measure: String,
    sub: String,
    value: String,
    markable: Boolean,
  },
};
