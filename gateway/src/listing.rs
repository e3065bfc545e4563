//! The training service's List calls as the gateway merges them over several training hosts:
//! every host is asked for every page it has, the items are ordered newest first (ties by
//! id), an id listed by several hosts (hosts sharing one models volume) is kept once, and the
//! caller's page is cut from the merged list.

use ktrdr_common::paging::Paged;
use ktrdr_proto::training::v1 as pb;

/// The largest page asked of a host while merging: the most a training host gives at once.
pub const HOST_PAGE_SIZE: i32 = ktrdr_common::paging::MAX_SIZE as i32;

/// A List request whose answers from several hosts merge into one list.
pub trait HostList: Clone {
    type Answer;
    type Item;

    /// The caller's page size and token.
    fn paging(&self) -> (i32, &str);
    /// The same request (same filters) asking a host for the page at `token`.
    fn host_page(&self, token: String) -> Self;
    /// A host's items and its next page token (empty on its last page).
    fn items(answer: Self::Answer) -> (Vec<Self::Item>, String);
    /// Creation time and id: the order, and the identity that is listed once.
    fn key(item: &Self::Item) -> (i64, &str);
    /// The caller's answer.
    fn answer(page: Paged<Self::Item>) -> Self::Answer;
}

/// Newest first, ties by id; an id once.
pub fn merge<L: HostList>(mut items: Vec<L::Item>) -> Vec<L::Item> {
    items.sort_by(|a, b| {
        let (a_at, a_id) = L::key(a);
        let (b_at, b_id) = L::key(b);
        b_at.cmp(&a_at).then(a_id.cmp(b_id))
    });
    items.dedup_by(|a, b| L::key(a).1 == L::key(b).1);
    items
}

macro_rules! host_list {
    ($request:ty, $answer:ty, $item:ty, $items:ident, $id:ident) => {
        impl HostList for $request {
            type Answer = $answer;
            type Item = $item;

            fn paging(&self) -> (i32, &str) {
                (self.page_size, &self.page_token)
            }

            fn host_page(&self, token: String) -> Self {
                Self {
                    page_size: HOST_PAGE_SIZE,
                    page_token: token,
                    ..self.clone()
                }
            }

            fn items(answer: Self::Answer) -> (Vec<Self::Item>, String) {
                (answer.$items, answer.next_page_token)
            }

            fn key(item: &Self::Item) -> (i64, &str) {
                (item.created_at_ms, &item.$id)
            }

            fn answer(page: Paged<Self::Item>) -> Self::Answer {
                Self::Answer {
                    $items: page.items,
                    next_page_token: page.next_page_token,
                    total_size: page.total_size,
                }
            }
        }
    };
}

host_list!(
    pb::ListTrainingsRequest,
    pb::ListTrainingsResponse,
    pb::TrainingSession,
    sessions,
    session_id
);
host_list!(
    pb::ListModelsRequest,
    pb::ListModelsResponse,
    pb::Model,
    models,
    model_id
);
host_list!(
    pb::ListBacktestsRequest,
    pb::ListBacktestsResponse,
    pb::BacktestResult,
    results,
    backtest_id
);

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str, at: i64) -> pb::Model {
        pb::Model {
            model_id: id.to_owned(),
            created_at_ms: at,
            ..pb::Model::default()
        }
    }

    #[test]
    fn merged_items_are_newest_first_and_an_id_listed_by_two_hosts_is_kept_once() {
        let merged = merge::<pb::ListModelsRequest>(vec![
            model("b", 1),
            model("a", 3),
            model("c", 1),
            model("a", 3),
        ]);
        let ids: Vec<_> = merged.iter().map(|m| m.model_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn a_host_page_keeps_the_filters_and_asks_for_the_largest_page() {
        let request = pb::ListModelsRequest {
            strategy_name: "s".into(),
            page_size: 3,
            page_token: "6".into(),
            ..Default::default()
        };
        let page = request.host_page("500".into());
        assert_eq!(page.strategy_name, "s");
        assert_eq!((page.page_size, page.page_token.as_str()), (500, "500"));
    }
}
